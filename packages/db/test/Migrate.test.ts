/**
 * The migration runner against the real Postgres: two processes starting at once on one fresh
 * schema (as two services do) both succeed, and every migration is applied once.
 */
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import postgres from "postgres"
import { afterAll, describe, expect, it } from "vitest"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const MIGRATIONS = readdirSync(join(import.meta.dirname, "..", "migrations")).filter((f) => f.endsWith(".sql")).sort()

const schema = `tmig${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
const appName = `orbit-migrate-test-${schema}`
const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined })

/** A separate node process running `migrate` on `schema`; resolves with its exit code and stderr. */
const migratingProcess = () =>
  new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "migrate-process.ts")], {
      env: { ...process.env, DATABASE_URL, ORBIT_DB_SCHEMA: schema, MIGRATE_APP_NAME: appName },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stderr }))
  })

/** Resolves once `n` of the migrating processes' connections wait on a lock. */
const untilWaiting = async (n: number) => {
  for (;;) {
    const [row] = await sql<Array<{ waiting: number }>>`
      SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE application_name = ${appName} AND wait_event_type = 'Lock'`
    if (row!.waiting >= n) return
    await new Promise((r) => setTimeout(r, 50))
  }
}

afterAll(async () => {
  await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await sql.end()
})

describe("migrate (real Postgres, two processes)", () => {
  it("two processes migrating one fresh schema at once both succeed, and each migration applies once", async () => {
    // The two migrations have to overlap, however the host schedules the processes: this
    // connection creates the schema in a transaction left open, so a process's CREATE SCHEMA waits
    // on it (and with the migration lock held by that process, the other waits on the lock). Once
    // both wait, it rolls back: the schema is fresh again and both go on at once.
    const holder = await sql.reserve()
    await holder`BEGIN`
    await holder.unsafe(`CREATE SCHEMA "${schema}"`)
    const first = migratingProcess()
    const second = migratingProcess()
    await untilWaiting(2)
    await holder`ROLLBACK`
    holder.release()

    expect(await Promise.all([first, second])).toEqual([{ code: 0, stderr: "" }, { code: 0, stderr: "" }])
    const applied = await sql<Array<{ name: string }>>`SELECT name FROM ${sql(schema)}.schema_migrations ORDER BY name`
    expect(applied.map((r) => r.name)).toEqual(MIGRATIONS)
  })
})
