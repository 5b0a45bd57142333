/**
 * Endpoint stats across services: registration (API) → dispatcher (real HTTPS receiver) →
 * projection (`delivery_attempts`) → `GET /api/v1/webhooks/{id}/stats`. Real processes, real
 * Kafka, real Postgres; no mocks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CreateEndpointRequest, EndpointStats } from "@orbit/client"
import { type HttpsReceiver, type SelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type Platform, uniqueTenant } from "../src/Platform.ts"

let tls: SelfSignedCert
let receiver: HttpsReceiver
let platform: Platform
let rig: DeliveryRig

beforeAll(async () => {
  rig = await startDeliveryRig()
  ;({ tls, receiver, platform } = rig)
})

afterAll(async () => {
  await rig?.close()
})

/** One attempt per delivery: no retries, so each event is exactly one row of the attempt log. */
const ONE_ATTEMPT = { strategy: "custom", delays_seconds: [] }

const register = async (key: string, body: Record<string, unknown>) =>
  (await platform.client(key).webhooks.create(body as CreateEndpointRequest)).data

const stats = (key: string, id: string, query = "") =>
  platform.api("GET", `/api/v1/webhooks/${id}/stats${query}`, { key }) as Promise<{ status: number; json: any }>

/** Waits until the stats count `total` attempts, and returns them. */
const statsAt = (key: string, id: string, total: number) =>
  platform.eventually(`${total} attempts in the stats of ${id}`, async () => {
    const s = (await platform.client(key).webhooks.stats(id)).data
    return s.attempts.total >= total ? s : undefined
  })

describe("GET /api/v1/webhooks/{id}/stats", () => {
  let tenant: string
  let key: string
  let endpoint: { id: string; url: string; events: ReadonlyArray<string> }
  /** Events the receiver answers 500 to; the rest get 200. */
  const failEvents = new Set<string>()

  it("an endpoint without attempts is healthy, with no rate and no latencies", async () => {
    tenant = uniqueTenant()
    key = (await platform.createKey(tenant)).key
    receiver.respond("/stats", (r) => (failEvents.has(r.headers["x-devotel-event-id"] as string) ? 500 : 200))
    endpoint = await register(key, { url: receiver.url("/stats"), events: ["message.delivered"], retry_policy: ONE_ATTEMPT, timeout_seconds: 5 })
    const s = (await platform.client(key).webhooks.stats(endpoint.id)).data
    expect(s).toMatchObject({
      endpoint_id: endpoint.id,
      window: "24h",
      state: "healthy",
      attempts: { total: 0, succeeded: 0, failed: 0, no_response: 0 },
      success_rate: null,
      latency_ms: { p50: null, p95: null, p99: null },
      last_success_at: null,
      last_failure_at: null
    })
    expect(Date.parse(s.until) - Date.parse(s.since)).toBe(24 * 3600_000)
  })

  it("counts successes and failures; healthy → failing on a failed attempt → healthy again", async () => {
    for (let i = 0; i < 3; i++) await platform.publish(tenant)
    const ok = await statsAt(key, endpoint.id, 3)
    expect(ok).toMatchObject({ state: "healthy", attempts: { total: 3, succeeded: 3, failed: 0, no_response: 0 }, success_rate: 1, last_failure_at: null })
    expect(ok.last_success_at).not.toBeNull()
    const { p50, p95, p99 } = ok.latency_ms
    expect(p50).toBeTypeOf("number")
    expect(p50!).toBeLessThanOrEqual(p95!)
    expect(p95!).toBeLessThanOrEqual(p99!)

    failEvents.add(await platform.publish(tenant))
    const failing = await statsAt(key, endpoint.id, 4)
    expect(failing).toMatchObject({ state: "failing", attempts: { total: 4, succeeded: 3, failed: 1, no_response: 0 }, success_rate: 0.75 })
    expect(Date.parse(failing.last_failure_at!)).toBeGreaterThanOrEqual(Date.parse(failing.last_success_at!))

    await platform.publish(tenant)
    const again = await statsAt(key, endpoint.id, 5)
    expect(again).toMatchObject({ state: "healthy", attempts: { total: 5, succeeded: 4, failed: 1 }, success_rate: 0.8 })
    expect(Date.parse(again.last_success_at!)).toBeGreaterThanOrEqual(Date.parse(again.last_failure_at!))

    // The 7-day window holds the same attempts; a public key may read the stats.
    const publicKey = (await platform.createKey(tenant, "live", "public")).key
    const week = await stats(publicKey, endpoint.id, "?window=7d")
    expect(week.status).toBe(200)
    expect(week.json.data).toMatchObject({ window: "7d", state: "healthy", attempts: { total: 5, succeeded: 4, failed: 1 } })
    expect(Date.parse(week.json.data.until) - Date.parse(week.json.data.since)).toBe(7 * 24 * 3600_000)
  })

  it("fewer than half the attempts succeeding is failing even when the latest succeeded", async () => {
    for (let i = 0; i < 6; i++) failEvents.add(await platform.publish(tenant))
    await statsAt(key, endpoint.id, 11)
    await platform.publish(tenant)
    const s = await statsAt(key, endpoint.id, 12)
    expect(s).toMatchObject({ attempts: { total: 12, succeeded: 5, failed: 7 } })
    expect(Date.parse(s.last_success_at!)).toBeGreaterThanOrEqual(Date.parse(s.last_failure_at!))
    expect(s.state).toBe("failing")
  })

  it("an inactive endpoint is disabled, whatever its attempts", async () => {
    await platform.client(key).webhooks.update(endpoint.id, { url: endpoint.url, events: [...endpoint.events], active: false } as never)
    const s = (await platform.client(key).webhooks.stats(endpoint.id)).data
    expect(s.state).toBe("disabled")
    expect(s.attempts.total).toBe(12)
  })

  it("an endpoint whose attempts got no response at all is unresponsive", async () => {
    // A port nothing listens on: every attempt ends in a connection error, without an HTTP status.
    const closed = await startHttpsReceiver(tls)
    const url = closed.url("/gone")
    await closed.close()
    const dead = await register(key, { url, events: ["message.delivered"], retry_policy: ONE_ATTEMPT, timeout_seconds: 5 })
    await platform.publish(tenant)
    const s = await statsAt(key, dead.id, 1)
    expect(s).toMatchObject({ state: "unresponsive", attempts: { total: 1, succeeded: 0, failed: 1, no_response: 1 }, success_rate: 0, last_success_at: null })
  })

  it("unknown and other tenants' ids answer 404; a window other than 24h or 7d answers 422 with details", async () => {
    const other = (await platform.createKey(uniqueTenant())).key
    for (const [k, id] of [[other, endpoint.id], [key, "wh_doesnotexist0000000000"], [key, "not-an-id"]] as const) {
      const res = await stats(k, id)
      expect(res.status, id).toBe(404)
      expect(res.json.error.code).toBe("NOT_FOUND")
    }
    expect((await stats((await platform.createKey(tenant, "test")).key, endpoint.id)).status).toBe(404)

    const bad = await stats(key, endpoint.id, "?window=30d")
    expect(bad.status).toBe(422)
    expect(bad.json.error.code).toBe("VALIDATION_ERROR")
    expect(bad.json.error.details).toEqual([expect.objectContaining({ field: "window", value: "30d" })])
    for (const q of ["?window=", "?window=24h&window=7d", "?unknown=1", "?window=24H"]) {
      const res = await stats(key, endpoint.id, q)
      expect(res.status, q).toBe(422)
      expect(res.json.error.code).toBe("VALIDATION_ERROR")
    }
  })
})
