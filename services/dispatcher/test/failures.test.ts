/** Failed attempts: timeout, redirect, SSRF at delivery, retry timing, Retry-After, dead letter, cancellation. */
import { randomUUID } from "node:crypto"
import { deliveryIdFor } from "@orbit/domain"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { domainEvent, type Harness, makeCert, makeHarness, type Receiver, sleep, startReceiver, waitFor } from "./support.ts"

let tls: ReturnType<typeof makeCert>
let receiver: Receiver
let h: Harness
const url = (path: string, host = "hooks.test") => `https://${host}:${receiver.port}${path}`
const tenant = () => `ten_${randomUUID()}`

beforeAll(async () => {
  tls = makeCert()
  receiver = await startReceiver(tls)
  h = await makeHarness("failures")
  await h.startDispatcher({ ORBIT_EXTRA_CA_FILE: tls.caFile, ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8" })
})

afterAll(async () => {
  await h?.close()
  await receiver?.close()
  tls?.cleanup()
})

const attemptsOf = (endpointId: string) => h.attempts.filter((a) => a.endpoint_id === endpointId)

describe("failed attempts", () => {
  it("aborts an attempt at timeout_seconds (headers never sent) and dead-letters after the last attempt", async () => {
    const t = tenant()
    receiver.on("/hang", () => { /* never answers */ })
    const endpoint = await h.register({ url: url("/hang"), tenantId: t, timeoutSeconds: 1 })
    const event = domainEvent(t)
    await h.publish(event)
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    expect(attempt).toMatchObject({ outcome: "failed", error_class: "timeout", http_status: null, dead_lettered: true })
    expect(attempt!.duration_ms).toBeGreaterThanOrEqual(950)
    expect(attempt!.duration_ms).toBeLessThan(3000)
    const dead = await waitFor("dead letter", () => h.dead.find((d) => d.endpoint_id === endpoint.id))
    expect(dead).toMatchObject({ delivery_id: deliveryIdFor(event.id, endpoint.id), attempts: 1, last_error_class: "timeout" })
    expect(JSON.parse(dead.body).id).toBe(event.id)
  })

  it("never follows a redirect: a 3xx is a failed attempt", async () => {
    const t = tenant()
    receiver.on("/redirect", (_req, res) => res.writeHead(302, { location: "/redirect-target" }).end())
    const endpoint = await h.register({ url: url("/redirect"), tenantId: t })
    await h.publish(domainEvent(t))
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    expect(attempt).toMatchObject({ outcome: "failed", error_class: "redirect", http_status: 302 })
    await sleep(500)
    expect(receiver.received.filter((r) => r.path === "/redirect-target")).toEqual([])
  })

  it("reads at most 64 KiB of a huge 2xx response and counts it a success", async () => {
    const t = tenant()
    receiver.on("/huge", (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" })
      const chunk = "y".repeat(64 * 1024)
      let sent = 0
      const pump = () => {
        while (sent < 160 && res.write(chunk)) sent++
        if (sent < 160) res.once("drain", pump)
        else res.end()
      }
      res.on("error", () => undefined)
      pump()
    })
    const endpoint = await h.register({ url: url("/huge"), tenantId: t })
    await h.publish(domainEvent(t))
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    expect(attempt).toMatchObject({ outcome: "succeeded", http_status: 200 })
  })

  it("blocks a host that resolves to a private address at delivery (DNS rebinding)", async () => {
    const t = tenant()
    const endpoint = await h.register({ url: url("/rebind", "rebind.test"), tenantId: t })
    await h.publish(domainEvent(t))
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    expect(attempt).toMatchObject({ outcome: "failed", error_class: "ssrf_blocked", http_status: null })
    expect(receiver.received.filter((r) => r.path === "/rebind")).toEqual([])
  })

  it("retries per a custom policy [1, 2] never early, with the same delivery id, then dead-letters", async () => {
    const t = tenant()
    receiver.on("/flaky", (_req, res) => res.writeHead(500).end("nope"))
    const endpoint = await h.register({
      url: url("/flaky"),
      tenantId: t,
      retryPolicy: { strategy: "custom", delays_seconds: [1, 2] }
    })
    const event = domainEvent(t)
    await h.publish(event)
    const dead = await waitFor("dead letter", () => h.dead.find((d) => d.endpoint_id === endpoint.id), 20_000)
    expect(dead.attempts).toBe(3)
    const got = receiver.received.filter((r) => r.path === "/flaky")
    expect(got).toHaveLength(3)
    expect(new Set(got.map((r) => r.headers["x-devotel-delivery-id"]))).toEqual(new Set([deliveryIdFor(event.id, endpoint.id)]))
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(1000)
    expect(got[2]!.at - got[1]!.at).toBeGreaterThanOrEqual(2000)
    // Late by at most the tier granularity plus jitter (10 %) and scheduling slack.
    expect(got[1]!.at - got[0]!.at).toBeLessThan(2500)
    expect(got[2]!.at - got[1]!.at).toBeLessThan(3500)
    // The attempt events and the dead letter travel on different topics: wait for all three.
    const attempts = await waitFor("three attempt events", () => {
      const a = attemptsOf(endpoint.id)
      return a.length >= 3 ? a : undefined
    }, 10_000)
    expect(attempts.map((a) => [a.attempt, a.outcome, a.http_status, a.dead_lettered])).toEqual([
      [1, "failed", 500, false],
      [2, "failed", 500, false],
      [3, "failed", 500, true]
    ])
    expect(Date.parse(attempts[0]!.next_attempt_at!)).toBeLessThanOrEqual(got[1]!.at)
  })

  it("honours a longer Retry-After on 503", async () => {
    const t = tenant()
    let calls = 0
    receiver.on("/busy", (_req, res) => {
      calls++
      if (calls === 1) res.writeHead(503, { "retry-after": "3" }).end()
      else res.writeHead(204).end()
    })
    const endpoint = await h.register({ url: url("/busy"), tenantId: t, retryPolicy: { strategy: "custom", delays_seconds: [1] } })
    await h.publish(domainEvent(t))
    await waitFor("success", () => attemptsOf(endpoint.id).find((a) => a.outcome === "succeeded"), 15_000)
    const got = receiver.received.filter((r) => r.path === "/busy")
    expect(got).toHaveLength(2)
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(3000)
  })

  it("cancels pending retries of a deleted endpoint", async () => {
    const t = tenant()
    receiver.on("/deleted", (_req, res) => res.writeHead(500).end())
    const endpoint = await h.register({ url: url("/deleted"), tenantId: t, retryPolicy: { strategy: "custom", delays_seconds: [2] } })
    await h.publish(domainEvent(t))
    await waitFor("first attempt", () => attemptsOf(endpoint.id).length > 0)
    await h.emit({
      _tag: "EndpointDeleted",
      schema_version: 1,
      event_id: randomUUID(),
      occurred_at: new Date().toISOString(),
      endpoint_id: endpoint.id,
      tenant_id: t,
      mode: "live"
    })
    await sleep(4000)
    expect(receiver.received.filter((r) => r.path === "/deleted")).toHaveLength(1)
    expect(attemptsOf(endpoint.id)).toHaveLength(1)
  })
})
