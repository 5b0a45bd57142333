/**
 * EndpointStore against the real Postgres (a schema of its own): pages come in (created_at, id)
 * order at full timestamp precision, and walking them with the cursor position returns every row
 * exactly once, even when endpoints share a millisecond.
 */
import { randomBytes } from "node:crypto"
import { Db } from "@orbit/db"
import { Effect, Layer, ManagedRuntime } from "effect"
import { postgres } from "@orbit/db"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CursorPosition } from "../src/Cursor.ts"
import { EndpointStore } from "../src/EndpointStore.ts"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

describe("EndpointStore (real Postgres)", () => {
  const schema = `tstore${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined, connection: { search_path: schema } })
  let runtime: ManagedRuntime.ManagedRuntime<EndpointStore, unknown>

  beforeAll(async () => {
    Object.assign(process.env, { ORBIT_DB_SCHEMA: schema, DATABASE_URL })
    runtime = ManagedRuntime.make(EndpointStore.layer.pipe(Layer.provide(Db.layer)))
    await runtime.context()
  })

  afterAll(async () => {
    await runtime.dispose()
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await sql.end()
  })

  it("orders by the stored instant, not its millisecond rendering, and pages without gaps or repeats", async () => {
    // Instants are sent as text for Postgres to parse: the driver would round a timestamptz parameter
    // to milliseconds. 30 milliseconds, two endpoints in each: the later one (…900 µs) has the smaller id, so an
    // order by the millisecond text with the id as tie-break would put the pair the wrong way round.
    const base = Date.parse("2026-11-27T10:00:00.000Z")
    const rows = Array.from({ length: 30 }, (_, i) => {
      const ms = new Date(base + i).toISOString().slice(0, 23)
      return [
        { id: `wh_${String(i).padStart(3, "0")}a`, created_at: `${ms}900Z` },
        { id: `wh_${String(i).padStart(3, "0")}b`, created_at: `${ms}100Z` }
      ]
    }).flat()
    for (const [tenant, mode] of [["tenant_a", "live"], ["tenant_a", "test"], ["tenant_b", "live"]] as const) {
      for (const r of rows) {
        await sql`INSERT INTO endpoints (id, tenant_id, mode, url, events, description, active, timeout_seconds,
            retry_policy, secret_box, created_at, updated_at)
          VALUES (${`${r.id}_${tenant}_${mode}`}, ${tenant}, ${mode}, 'https://example.com/h', '["message.delivered"]', null,
            true, 30, '{"max_attempts":5,"backoff":"exponential"}', 'box', ${r.created_at}::text::timestamptz, ${r.created_at}::text::timestamptz)`
      }
    }
    const expected = rows
      .toSorted((x, y) => (x.created_at === y.created_at ? (x.id < y.id ? 1 : -1) : x.created_at < y.created_at ? 1 : -1))
      .map((r) => `${r.id}_tenant_a_live`)

    const seen: Array<string> = []
    let after: CursorPosition | undefined
    for (let pages = 0; pages < 20; pages++) {
      const page = await runtime.runPromise(
        Effect.gen(function*() {
          const store = yield* EndpointStore
          return yield* store.list({ tenantId: "tenant_a", mode: "live" }, 7, after)
        })
      )
      seen.push(...page.items.map((e) => e.id))
      expect(page.items.every((e) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(e.created_at))).toBe(true)
      after = page.next
      if (after === undefined) break
    }
    expect(seen).toEqual(expected)
  })

  it("loads an endpoint's whole state by id, whatever its tenant and mode, for the decider to scope", async () => {
    await sql`INSERT INTO endpoints (id, tenant_id, mode, url, events, description, active, timeout_seconds,
        retry_policy, headers, rate_limit_per_second, disabled_reason, disabled_at, secret_box, previous_secret_box, previous_expires_at, created_at, updated_at)
      VALUES ('wh_load', 'tenant_c', 'test', 'https://example.com/h', '["*"]', 'd', false, 10,
        '{"strategy":"custom","delays_seconds":[1]}', '{"X-A":"1"}', 7, 'failing', '2026-11-27T11:00:00Z',
        'box_now', 'box_before', '2026-11-28T10:00:00.123456Z',
        '2026-11-27T10:00:00.123456Z', '2026-11-27T11:00:00Z')`
    const [loaded, missing] = await runtime.runPromise(
      Effect.gen(function*() {
        const store = yield* EndpointStore
        return [yield* store.load("wh_load"), yield* store.load("wh_none")] as const
      })
    )
    expect(loaded).toEqual({
      id: "wh_load",
      tenant_id: "tenant_c",
      mode: "test",
      url: "https://example.com/h",
      events: ["*"],
      description: "d",
      active: false,
      timeout_seconds: 10,
      retry_policy: { strategy: "custom", delays_seconds: [1] },
      headers: { "X-A": "1" },
      rate_limit_per_second: 7,
      disabled_reason: "failing",
      disabled_at: "2026-11-27T11:00:00.000Z",
      secret_box: "box_now",
      previous_secret_box: "box_before",
      previous_expires_at: "2026-11-28T10:00:00.123Z",
      created_at: "2026-11-27T10:00:00.123Z",
      updated_at: "2026-11-27T11:00:00.000Z"
    })
    expect(missing).toBeUndefined()
  })
})
