/**
 * One migrating process for Migrate.test.ts: runs `migrate` on ORBIT_DB_SCHEMA at DATABASE_URL,
 * as a service does at start, and exits 0; on failure prints the message and exits 1. Its
 * connection carries MIGRATE_APP_NAME, for the test to see it wait in pg_stat_activity.
 */
import { Effect } from "effect"
import postgres from "postgres"
import { migrate } from "../src/Db.ts"

const sql = postgres(process.env.DATABASE_URL!, {
  max: 1,
  onnotice: () => undefined,
  connection: { application_name: process.env.MIGRATE_APP_NAME! }
})
try {
  await Effect.runPromise(migrate(sql, process.env.ORBIT_DB_SCHEMA!))
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
  process.exitCode = 1
} finally {
  await sql.end({ timeout: 5 })
}
