/**
 * Auto-disable through the real services: a real HTTPS receiver that fails, the real dispatcher
 * making the attempts, the projection's attempt log, and the registration service disabling an
 * endpoint whose every attempt has failed for ORBIT_AUTO_DISABLE_AFTER (3 seconds here) with at
 * least 10 failed attempts; the tenant's subscribers get `webhook.endpoint.disabled`; PUT with
 * `active: true` turns it on again. The sweep's plan computes each streak start once (a
 * materialized CTE), over an index of successes. Real Kafka, real Postgres; no mocks.
 */
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { HttpsReceiver } from "../src/HttpsReceiver.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type Platform, uniqueTenant } from "../src/Platform.ts"
import { failingEndpoints } from "../../services/registration/src/AutoDisable.ts"

const AFTER_SECONDS = 3

let receiver: HttpsReceiver
let platform: Platform
let rig: DeliveryRig

beforeAll(async () => {
  rig = await startDeliveryRig({ ORBIT_AUTO_DISABLE_AFTER: String(AFTER_SECONDS) })
  ;({ receiver, platform } = rig)
})

afterAll(async () => {
  await rig?.close()
})

const BASE = "/api/v1/webhooks"

/** Attempts of an endpoint in the attempt log, oldest first. */
const attemptsOf = (id: string) =>
  platform.sql<Array<{ outcome: string; occurred_at: Date }>>`
    SELECT outcome, occurred_at FROM delivery_attempts WHERE endpoint_id = ${id} ORDER BY occurred_at`

describe("auto-disable", () => {
  const tenant = uniqueTenant()
  const other = uniqueTenant()
  let key: string
  let otherKey: string
  const run = randomUUID()
  const paths = { failing: `/failing-${run}`, few: `/few-${run}`, watcher: `/watcher-${run}`, otherWatcher: `/other-${run}` }
  let failing: any
  let few: any
  let watcher: any
  let otherWatcher: any
  let failingOn = true

  const register = async (k: string, body: Record<string, unknown>) => {
    const res = await platform.api("POST", BASE, { key: k, body })
    expect(res.status, res.text).toBe(201)
    return res.json.data
  }

  it("disables an endpoint whose every attempt failed for the period (10 or more), not one with fewer failures", async () => {
    key = (await platform.createKey(tenant)).key
    otherKey = (await platform.createKey(other)).key
    receiver.respond(paths.failing, () => (failingOn ? 500 : 200))
    receiver.respond(paths.few, () => 500)
    watcher = await register(key, { url: receiver.url(paths.watcher), events: ["webhook.endpoint.disabled"] })
    otherWatcher = await register(otherKey, { url: receiver.url(paths.otherWatcher), events: ["*"] })
    expect(watcher).toMatchObject({ active: true, disabled_reason: null, disabled_at: null })

    // Five failures over four seconds: longer than the period, fewer than ten attempts.
    few = await register(key, { url: receiver.url(paths.few), events: ["message.failed"], retry_policy: { strategy: "fixed", max_attempts: 5, delay_seconds: 1 } })
    await platform.publish(tenant, { type: "message.failed" })
    await platform.eventually("five failed attempts of the endpoint with few failures", async () => (await attemptsOf(few.id)).length >= 5 || undefined)

    // Ten failures a second apart per event, two events: every attempt fails for well over the period.
    failing = await register(key, { url: receiver.url(paths.failing), events: ["message.delivered"], retry_policy: { strategy: "fixed", max_attempts: 10, delay_seconds: 1 } })
    await platform.publish(tenant)
    await platform.publish(tenant)

    const disabled = await platform.eventually("the failing endpoint to be disabled", async () => {
      const res = await platform.api("GET", `${BASE}/${failing.id}`, { key })
      return res.json.data.active === false ? res.json.data : undefined
    })
    expect(disabled).toMatchObject({ active: false, disabled_reason: "failing" })
    expect(Date.parse(disabled.disabled_at)).toBeGreaterThan(0)

    // The rule held: at least 10 attempts, all failed, the first at least the period before it was disabled.
    const attempts = (await attemptsOf(failing.id)).filter((a) => a.occurred_at.getTime() <= Date.parse(disabled.disabled_at))
    expect(attempts.length).toBeGreaterThanOrEqual(10)
    expect(attempts.every((a) => a.outcome === "failed")).toBe(true)
    expect(Date.parse(disabled.disabled_at) - attempts[0]!.occurred_at.getTime()).toBeGreaterThanOrEqual(AFTER_SECONDS * 1000)

    // The same sweep looked at the endpoint with few failures (its streak is older) and kept it on.
    const stillOn = (await platform.api("GET", `${BASE}/${few.id}`, { key })).json.data
    expect(stillOn).toMatchObject({ active: true, disabled_reason: null, disabled_at: null })

    // The list shows the same, and so do the stats.
    const listed = (await platform.api("GET", BASE, { key })).json.data.find((e: { id: string }) => e.id === failing.id)
    expect(listed).toMatchObject({ active: false, disabled_reason: "failing", disabled_at: disabled.disabled_at })
    expect((await platform.api("GET", `${BASE}/${failing.id}/stats`, { key })).json.data.state).toBe("disabled")
  })

  it("sends webhook.endpoint.disabled to the tenant's subscribers only", async () => {
    const notice = await platform.eventually("the disabled notice at the watcher", () =>
      receiver.received.find((r) => r.path === paths.watcher && r.headers["x-devotel-event-type"] === "webhook.endpoint.disabled"))
    const body = JSON.parse(notice.body)
    expect(body.type).toBe("webhook.endpoint.disabled")
    const disabled = (await platform.api("GET", `${BASE}/${failing.id}`, { key })).json.data
    expect(body.data).toEqual({ endpoint_id: failing.id, reason: "failing", disabled_at: disabled.disabled_at, last_status: 500 })

    // Another tenant's endpoint subscribed to everything got no attempt of it; neither did the disabled endpoint.
    await platform.projectionCaughtUp("attempts")
    const [{ n }] = await platform.sql`SELECT count(*)::int AS n FROM delivery_attempts
      WHERE source_event_type = 'webhook.endpoint.disabled' AND endpoint_id <> ${watcher.id}`
    expect(n).toBe(0)
    expect(receiver.received.filter((r) => r.path === paths.otherWatcher)).toEqual([])
  })

  it("PUT with active: true turns it on again and clears the reason; deliveries resume", async () => {
    failingOn = false
    const res = await platform.api("PUT", `${BASE}/${failing.id}`, {
      key,
      body: { url: failing.url, events: failing.events, retry_policy: failing.retry_policy, active: true }
    })
    expect(res.status, res.text).toBe(200)
    expect(res.json.data).toMatchObject({ active: true, disabled_reason: null, disabled_at: null })
    const eventId = await platform.publish(tenant)
    await platform.eventually("a delivery to the re-enabled endpoint", () =>
      receiver.received.find((r) => r.path === paths.failing && r.headers["x-devotel-event-id"] === eventId && r.status === 200))
    expect((await platform.api("GET", `${BASE}/${failing.id}`, { key })).json.data).toMatchObject({ active: true, disabled_reason: null })
  })

  it("finds each endpoint's streak start once (a materialized CTE), its last success through an index of successes", async () => {
    // Inlined, Postgres evaluated the last-success subquery once per attempt of a streak: minutes
    // at 100,000 endpoints and 2 million attempts (docs/BENCHMARKS.md). The plan's shape shows it
    // whatever the data: a CTE Scan of `active` only when the CTE is materialized.
    const [{ "QUERY PLAN": plan }] = await platform.sql<Array<{ "QUERY PLAN": unknown }>>`
      EXPLAIN (FORMAT JSON) ${failingEndpoints(platform.sql as never, AFTER_SECONDS)}`
    expect(JSON.stringify(plan)).toMatch(/"Node Type":"CTE Scan",[^}]*"CTE Name":"active"/)
    const [index] = await platform.sql<Array<{ indexdef: string }>>`
      SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'delivery_attempts_succeeded'`
    expect(index?.indexdef).toContain("WHERE (outcome = 'succeeded'::text)")
  })
})
