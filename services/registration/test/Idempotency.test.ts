/**
 * Idempotency-key housekeeping against the real Postgres (a schema of its own): keys older than
 * 24 hours are deleted in batches by the layer's background fiber; younger ones stay.
 */
import { randomBytes } from "node:crypto"
import { Db, postgres } from "@orbit/db"
import { ConfigProvider, Effect, Layer, ManagedRuntime } from "effect"
import { afterAll, describe, expect, it, vi } from "vitest"
import { Idempotency } from "../src/Idempotency.ts"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

describe("Idempotency: expired keys (real Postgres)", () => {
  const schema = `tidem${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined, connection: { search_path: schema } })
  const runtimes: Array<ManagedRuntime.ManagedRuntime<Idempotency, unknown>> = []

  /** The layer with its background sweep every `interval`; its first sweep runs as it starts. */
  const start = async (interval: string) => {
    const env = { ...process.env, ORBIT_DB_SCHEMA: schema, DATABASE_URL, ORBIT_IDEMPOTENCY_SWEEP_INTERVAL: interval } as Record<string, string>
    const runtime = ManagedRuntime.make(Idempotency.layer.pipe(
      Layer.provide(Db.layer),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
    ))
    runtimes.push(runtime)
    await runtime.context()
    return runtime
  }

  /** `n` keys of one tenant created `hoursAgo` hours ago. */
  const insertKeys = (tenant: string, n: number, hoursAgo: number) =>
    sql`INSERT INTO idempotency_keys (tenant_id, mode, key, request_hash, status, response, created_at)
      SELECT ${tenant}, 'live', 'k' || i, 'h', 201, '{}', now() - make_interval(hours => ${hoursAgo})
      FROM generate_series(1, ${n}) AS i`
  const countOf = async (tenant: string) =>
    Number((await sql<Array<{ n: string }>>`SELECT count(*) AS n FROM idempotency_keys WHERE tenant_id = ${tenant}`)[0]!.n)

  afterAll(async () => {
    for (const runtime of runtimes) await runtime.dispose()
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await sql.end()
  })

  it("deletes expired keys in batches and keeps the ones younger than 24 hours", async () => {
    // The background sweep ran once at start, on an empty table, and waits an hour for the next.
    const runtime = await start("1 hour")
    await insertKeys("t_direct_old", 25, 25)
    await insertKeys("t_direct_new", 5, 23)
    // Batches of 10: three statements, the last one short.
    const deleted = await runtime.runPromise(Effect.gen(function*() {
      return yield* (yield* Idempotency).deleteExpired(10)
    }))
    expect(deleted).toBe(25)
    expect(await countOf("t_direct_old")).toBe(0)
    expect(await countOf("t_direct_new")).toBe(5)
  })

  it("runs in the background: expired rows go without any request, unexpired ones stay", async () => {
    await start("200 millis")
    await insertKeys("t_background_old", 2500, 25)
    await insertKeys("t_background_new", 7, 1)
    await vi.waitFor(async () => expect(await countOf("t_background_old")).toBe(0), { timeout: 30_000, interval: 100 })
    expect(await countOf("t_background_new")).toBe(7)
  }, 60_000)
})
