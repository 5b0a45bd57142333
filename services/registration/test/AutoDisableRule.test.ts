/**
 * The auto-disable rule against the real Postgres read models (a schema of its own): which
 * endpoints `failingEndpoints` finds due, from rows of `endpoints` and `delivery_attempts`.
 */
import { randomBytes } from "node:crypto"
import { Db, postgres } from "@orbit/db"
import { ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { failingEndpoints } from "../src/AutoDisable.ts"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

describe("failingEndpoints (real Postgres)", () => {
  const schema = `tdisable${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined, connection: { search_path: schema } })
  let runtime: ManagedRuntime.ManagedRuntime<Db, unknown>

  beforeAll(async () => {
    Object.assign(process.env, { ORBIT_DB_SCHEMA: schema, DATABASE_URL })
    runtime = ManagedRuntime.make(Db.layer)
    await runtime.context()
  })

  afterAll(async () => {
    await runtime.dispose()
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await sql.end()
  })

  /** An endpoint last changed `changedMinutesAgo` minutes ago. */
  const endpoint = (id: string, changedMinutesAgo: number, active = true) =>
    sql`INSERT INTO endpoints (id, tenant_id, mode, url, events, description, active, timeout_seconds, retry_policy,
        secret_box, created_at, updated_at)
      VALUES (${id}, 'tenant_a', 'live', 'https://example.com/h', '["*"]', null, ${active}, 30,
        '{"strategy":"custom","delays_seconds":[]}', 'box', now() - interval '1 day',
        now() - make_interval(mins => ${changedMinutesAgo}))`

  /** Attempts of `id`, one per entry: minutes ago and the status (200 succeeds, null had no response). */
  const attempts = (id: string, at: ReadonlyArray<readonly [minutesAgo: number, status: number | null]>) =>
    Promise.all(at.map(([minutesAgo, status], i) =>
      sql`INSERT INTO delivery_attempts (id, delivery_id, endpoint_id, tenant_id, mode, source_event_id, source_event_type,
          attempt, outcome, http_status, duration_ms, error_class, error_message, next_attempt_at, dead_lettered, occurred_at)
        VALUES (${`${id}_${i}`}, ${`d_${id}_${i}`}, ${id}, 'tenant_a', 'live', 'evt_1', 'message.delivered', 1,
          ${status === 200 ? "succeeded" : "failed"}, ${status}, 5, ${status === 200 ? null : "http_status"}, null, null, false,
          now() - make_interval(secs => ${minutesAgo * 60}))`
    ))

  /** `n` failures spread from `fromMinutesAgo` to `toMinutesAgo`, the newest with `lastStatus`. */
  const failures = (n: number, fromMinutesAgo: number, toMinutesAgo: number, lastStatus: number | null = 503) =>
    Array.from({ length: n }, (_, i) =>
      [fromMinutesAgo - ((fromMinutesAgo - toMinutesAgo) * i) / Math.max(1, n - 1), i === n - 1 ? lastStatus : 500] as const)

  it("finds an active endpoint whose attempts since its last success and last change are ≥ 10 failures, the first ≥ the period ago", async () => {
    const HOUR = 3600
    await endpoint("wh_due", 180)
    await attempts("wh_due", [[170, 200], ...failures(10, 120, 1, null)])
    await endpoint("wh_nine", 180)
    await attempts("wh_nine", failures(9, 120, 1))
    await endpoint("wh_recovered", 180)
    await attempts("wh_recovered", [...failures(10, 120, 60), [50, 200], ...failures(10, 40, 1)])
    await endpoint("wh_changed", 30)
    await attempts("wh_changed", [...failures(10, 120, 35), ...failures(10, 20, 1)])
    await endpoint("wh_inactive", 180, false)
    await attempts("wh_inactive", failures(12, 120, 1))
    await endpoint("wh_recent", 180)
    await attempts("wh_recent", failures(30, 50, 1))
    await endpoint("wh_eleven", 180)
    await attempts("wh_eleven", failures(11, 61, 1, 429))

    const due = await failingEndpoints(sql, HOUR)
    expect(due.map((e) => [e.id, e.failures, e.last_status])).toEqual([
      ["wh_due", 10, null],
      ["wh_eleven", 11, 429]
    ])
    expect(due[0]).toMatchObject({ tenant_id: "tenant_a", mode: "live" })
    // The streak of wh_due starts at its last success, not at its last change.
    expect(Date.now() - Date.parse(due[0]!.since)).toBeGreaterThan(169 * 60_000)
    expect(Date.now() - Date.parse(due[1]!.since)).toBeGreaterThan(179 * 60_000)

    // A longer period: none of them yet.
    expect(await failingEndpoints(sql, 3 * HOUR)).toEqual([])
  })
})
