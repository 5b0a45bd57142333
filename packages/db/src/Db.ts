import { readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { Config, Context, Effect, Layer, Redacted, Schema } from "effect"
import postgres from "postgres"

export class DbUnavailable extends Schema.TaggedError<DbUnavailable>()("DbUnavailable", {
  message: Schema.String
}) {}

export class DbStartupError extends Schema.TaggedError<DbStartupError>()("DbStartupError", {
  message: Schema.String
}) {}

export type Sql = postgres.Sql<{}>
export type Tx = postgres.TransactionSql<{}>
/** Either the pool or a transaction: anything that runs tagged queries. */
export type Queryable = Sql | Tx

export const DbConfig = Config.all({
  url: Config.Redacted("DATABASE_URL").pipe(
    Config.withDefault(Redacted.make("postgres://postgres@127.0.0.1:5432/postgres"))
  ),
  // Every deployment (and every test run) can live in its own schema of one database.
  schema: Config.schema(Schema.String.check(Schema.isPattern(/^[a-z_][a-z0-9_]{0,62}$/)), "ORBIT_DB_SCHEMA").pipe(
    Config.withDefault("orbit")
  ),
  poolSize: Config.Int("ORBIT_DB_POOL_SIZE").pipe(Config.withDefault(10)),
  // Postgres cancels a statement that runs longer (0: never). A process killed mid-query leaves
  // its statement running until Postgres next writes to the closed socket: this bounds it.
  statementTimeoutMs: Config.schema(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), "ORBIT_DB_STATEMENT_TIMEOUT_MS").pipe(
    Config.withDefault(60_000)
  ),
  // libpq's variable: tells this process's connections apart in pg_stat_activity.
  applicationName: Config.String("PGAPPNAME").pipe(Config.withDefault("orbit-webhooks"))
})

// Found through the package's own name, not this file's folder: a service runs from a bundle
// (infra/bundle.ts) whose code lives elsewhere, while the migrations stay in this package.
const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.resolve("@orbit/db/package.json"))), "migrations")

/**
 * A driver failure's message. A connect that failed is Node's AggregateError, whose own message is
 * empty: its inner errors (one per address tried) say what happened.
 */
const driverMessage = (e: unknown): string =>
  e instanceof AggregateError && e.message === ""
    ? e.errors.map(driverMessage).join("; ")
    : e instanceof Error
    ? e.message
    : String(e)

/** Maps any driver failure to DbUnavailable: callers answer 503, never 500. */
export const query = <A>(f: () => PromiseLike<A>): Effect.Effect<A, DbUnavailable> =>
  Effect.tryPromise({
    try: () => Promise.resolve(f()),
    catch: (e) => new DbUnavailable({ message: driverMessage(e) })
  })

/** Postgres refused the data itself (SQLSTATE class 22 or 23): retrying the same rows cannot help. */
export const isDataError = (error: unknown) =>
  typeof error === "object" && error !== null && "code" in error && /^2[23]/.test(String(error.code))

/**
 * Runs `apply` in a transaction with `careful` false: all statements at once, no savepoints. When
 * Postgres refuses some row's data, that transaction is lost (the driver fails it as a whole), so
 * `apply` runs again in a fresh one with `careful` true, where it can isolate the bad row.
 */
export const transactCarefullyOnDataError = async <A>(sql: Sql, apply: (tx: Tx, careful: boolean) => Promise<A>): Promise<A> => {
  try {
    return (await sql.begin((tx) => apply(tx, false))) as A
  } catch (error) {
    if (!isDataError(error)) throw error
    return (await sql.begin((tx) => apply(tx, true))) as A
  }
}

/**
 * The Postgres connection pool (porsager/postgres), scoped to the configured schema, with the
 * plain-SQL migrations in ../migrations applied at start under an advisory lock.
 */
export class Db extends Context.Service<Db, {
  readonly sql: Sql
  readonly schema: string
  readonly url: string
}>()("@orbit/db/Db") {
  static readonly layer = Db.layerWith({})

  /** The pool with extra session settings for every connection (e.g. a projection's commit mode). */
  static layerWith(options: { readonly session?: Record<string, string> }) {
    return Layer.effect(
      Db,
      Effect.gen(function*() {
        const config = yield* DbConfig
        const url = Redacted.value(config.url)
        const sql = yield* Effect.acquireRelease(
          Effect.sync(() =>
            postgres(url, {
              max: config.poolSize,
              connect_timeout: 5,
              idle_timeout: 60,
              onnotice: () => undefined,
              connection: {
                statement_timeout: config.statementTimeoutMs,
                ...options.session,
                search_path: config.schema,
                application_name: config.applicationName
              }
            })
          ),
          (sql) => Effect.promise(() => sql.end({ timeout: 5 }))
        )
        yield* migrate(sql, config.schema).pipe(
          Effect.mapError((e) =>
            new DbStartupError({
              message: `cannot reach or migrate Postgres at DATABASE_URL (${redactUrl(url)}): ${e.message}`
            })
          )
        )
        return Db.of({ sql, schema: config.schema, url })
      })
    )
  }
}

const redactUrl = (url: string) => url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@")

/**
 * Lifts the statement timeout for the rest of a transaction, for work whose length grows with the
 * data and has no useful bound: a migration (an index built over millions of rows), emptying a
 * read model before it is rebuilt.
 */
export const unboundedStatements = (tx: Tx) => tx`SET LOCAL statement_timeout = 0`

export const migrate = (sql: Sql, schema: string) =>
  query(() =>
    sql.begin(async (tx) => {
      await unboundedStatements(tx)
      // Transaction-level advisory lock: concurrent service starts migrate one at a time.
      await tx`SELECT pg_advisory_xact_lock(hashtext(${"orbit-migrations:" + schema}))`
      await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`)
      await tx.unsafe(`SET LOCAL search_path TO "${schema}"`)
      await tx`CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`
      const done = new Set((await tx<Array<{ name: string }>>`SELECT name FROM schema_migrations`).map((r) => r.name))
      for (const file of readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith(".sql")).sort()) {
        if (done.has(file)) continue
        await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, file), "utf8"))
        await tx`INSERT INTO schema_migrations (name) VALUES (${file})`
      }
    })
  )

/**
 * The Postgres driver itself, for code that must talk to a database without the pool above
 * (tests that inspect tables, benchmark baselines): this package is its only importer.
 */
export { default as postgres } from "postgres"
