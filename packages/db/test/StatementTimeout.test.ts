/**
 * The pool's statement timeout against the real Postgres: every connection carries
 * ORBIT_DB_STATEMENT_TIMEOUT_MS (one minute unless set), Postgres cancels a statement that runs
 * past it, and a transaction that lifts it (`unboundedStatements`: migrations, emptying a read
 * model) runs as long as its work takes.
 */
import { randomBytes } from "node:crypto"
import { ConfigProvider, Effect, Layer, ManagedRuntime } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { Db, postgres, unboundedStatements } from "../src/index.ts"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const schema = `tsto${Date.now().toString(36)}${randomBytes(3).toString("hex")}`

/** Runs `f` with the pool `Db.layer` builds under `env`, then closes it. */
const withPool = async <A>(env: Record<string, string>, f: (pool: Promise<Db["Service"]>) => Promise<A>): Promise<A> => {
  const runtime = ManagedRuntime.make(
    Db.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { DATABASE_URL, ORBIT_DB_SCHEMA: schema, ...env } }))))
  )
  try {
    return await f(runtime.runPromise(Effect.gen(function*() { return yield* Db })))
  } finally {
    await runtime.dispose()
  }
}

afterAll(async () => {
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => undefined })
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await sql.end()
})

describe("the pool's statement timeout (real Postgres)", () => {
  it("is one minute unless set", async () => {
    await withPool({}, async (pool) => {
      const { sql } = await pool
      const [row] = await sql<Array<{ statement_timeout: string }>>`SHOW statement_timeout`
      expect(row!.statement_timeout).toBe("1min")
    })
  })

  it("cancels a statement that runs past it; a transaction that lifts it runs to the end", async () => {
    await withPool({ ORBIT_DB_STATEMENT_TIMEOUT_MS: "300" }, async (pool) => {
      const { sql } = await pool
      const cancelled = await sql`SELECT pg_sleep(30)`.then(() => undefined, (e: unknown) => e)
      // 57014 query_canceled: "canceling statement due to statement timeout".
      expect(cancelled).toMatchObject({ code: "57014" })
      const [row] = await sql.begin(async (tx) => {
        await unboundedStatements(tx)
        return tx<Array<{ slept: string }>>`SELECT pg_sleep(0.6)::text AS slept`
      })
      expect(row).toEqual({ slept: "" })
      // Lifted for that transaction only: the connection it ran on is bounded again.
      const [after] = await sql<Array<{ statement_timeout: string }>>`SHOW statement_timeout`
      expect(after!.statement_timeout).toBe("300ms")
    })
  })

  it("refuses a setting that is not a whole number of milliseconds, naming it", async () => {
    const failure = await withPool({ ORBIT_DB_STATEMENT_TIMEOUT_MS: "soon" }, (pool) => pool.then(() => undefined, (e: unknown) => String(e)))
    expect(failure).toContain("ORBIT_DB_STATEMENT_TIMEOUT_MS")
  })
})
