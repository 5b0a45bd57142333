/** Failed attempts: timeout, redirect, SSRF at delivery, retry timing, Retry-After, dead letter, cancellation. */
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import type { ServerResponse } from "node:http"
import { type DeliveryAttempted, deliveryIdFor, MAX_RETRY_AFTER_SECONDS } from "@orbit/domain"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { MAX_RESPONSE_BYTES } from "../src/delivery/Deliverer.ts"
import {
  domainEvent,
  findTask,
  type Harness,
  makeCert,
  makeHarness,
  type Receiver,
  startReceiver,
  tierTopics,
  waitFor,
  waitForCommittedPast
} from "./support.ts"

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
/** How long after the failure (the attempt event's clock reading) the next attempt is scheduled. */
const scheduledDelayMs = (a: DeliveryAttempted) => Date.parse(a.next_attempt_at!) - Date.parse(a.occurred_at)

describe("failed attempts", () => {
  it("aborts an attempt at timeout_seconds (headers never sent) and dead-letters after the last attempt", async () => {
    const t = tenant()
    // Two hanging endpoints, 1 s and 60 s: the 1 s attempt must be aborted (its request closed by
    // the dispatcher, its timeout recorded) while the 60 s one is still open and unrecorded.
    const open = new Map<string, ServerResponse>()
    const hang = (path: string) => receiver.on(path, (_req, res) => {
      open.set(path, res)
      res.on("close", () => open.delete(path))
    })
    hang("/hang")
    hang("/hang-long")
    const endpoint = await h.register({ url: url("/hang"), tenantId: t, timeoutSeconds: 1, events: ["message.delivered"] })
    const long = await h.register({ url: url("/hang-long"), tenantId: t, timeoutSeconds: 60, events: ["message.sent"] })
    await h.publish(domainEvent(t, "message.sent"))
    await waitFor("the 60 s request open", () => open.has("/hang-long"))
    const event = domainEvent(t)
    await h.publish(event)
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    expect(attempt).toMatchObject({ outcome: "failed", error_class: "timeout", http_status: null, dead_lettered: true })
    // Aborted at this endpoint's timeout (the dispatcher's own record of the limit it applied),
    // never before it.
    expect(attempt!.error_message).toBe("no complete response within 1000 ms")
    expect(attempt!.duration_ms).toBeGreaterThanOrEqual(950)
    expect(receiver.received.filter((r) => r.path === "/hang")).toHaveLength(1)
    await waitFor("the 1 s request closed by the dispatcher", () => !open.has("/hang"))
    expect(open.has("/hang-long")).toBe(true)
    expect(attemptsOf(long.id)).toEqual([])
    const dead = await waitFor("dead letter", () => h.dead.find((d) => d.endpoint_id === endpoint.id))
    expect(dead).toMatchObject({ delivery_id: deliveryIdFor(event.id, endpoint.id), attempts: 1, last_error_class: "timeout" })
    expect(JSON.parse(dead.body).id).toBe(event.id)
  })

  it("never follows a redirect: a 3xx is a failed attempt", async () => {
    const t = tenant()
    receiver.on("/redirect", (_req, res) => res.writeHead(302, { location: "/redirect-target" }).end())
    receiver.on("/redirect-target", (_req, res) => res.writeHead(200).end("ok"))
    const endpoint = await h.register({ url: url("/redirect"), tenantId: t })
    await h.publish(domainEvent(t))
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    // A followed redirect would be part of the attempt: the receiver records the target request
    // before answering it, so it would be here before the attempt event (and the outcome a 200).
    expect(attempt).toMatchObject({ outcome: "failed", error_class: "redirect", http_status: 302 })
    expect(receiver.received.filter((r) => r.path === "/redirect-target")).toEqual([])
  })

  it("reads at most 64 KiB of a huge 2xx response, then closes the connection, and counts it a success", async () => {
    const t = tenant()
    const CHUNK = 64 * 1024
    const TOTAL = 10 * 1024 * 1024
    // Bytes the receiver's socket accepted: a chunk counts once its write callback reports it
    // handed to the kernel without error.
    let accepted = 0
    let closed = false
    receiver.on("/huge", (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" })
      const chunk = Buffer.alloc(CHUNK, "y")
      let queued = 0
      const pump = () => {
        while (queued < TOTAL && !res.destroyed) {
          queued += CHUNK
          const more = res.write(chunk, (error) => { if (!error) accepted += CHUNK })
          if (!more) return void res.once("drain", pump)
        }
        if (queued >= TOTAL) res.end()
      }
      res.on("error", () => undefined)
      res.on("close", () => { closed = true })
      pump()
    })
    const endpoint = await h.register({ url: url("/huge"), tenantId: t })
    await h.publish(domainEvent(t))
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    expect(attempt).toMatchObject({ outcome: "succeeded", http_status: 200 })
    await waitFor("the receiver's response closed", () => closed)
    // What the dispatcher read (the cap, plus the last read that crossed it, at most one chunk),
    // plus what the kernel buffers hold unread: the dispatcher's receive buffer and the
    // receiver's send buffer (their default sizes, the middle values of tcp_rmem and tcp_wmem).
    const defaultOf = (name: string) => Number(readFileSync(`/proc/sys/net/ipv4/${name}`, "utf8").trim().split(/\s+/)[1])
    const bound = MAX_RESPONSE_BYTES + CHUNK + defaultOf("tcp_rmem") + defaultOf("tcp_wmem")
    expect(MAX_RESPONSE_BYTES).toBe(64 * 1024)
    expect(accepted).toBeGreaterThan(0)
    expect(accepted).toBeLessThanOrEqual(bound)
  })

  it("blocks a host that resolves to a private address at delivery (DNS rebinding)", async () => {
    const t = tenant()
    const endpoint = await h.register({ url: url("/rebind", "rebind.test"), tenantId: t })
    await h.publish(domainEvent(t))
    const [attempt] = await waitFor("attempt", () => attemptsOf(endpoint.id).length > 0 && attemptsOf(endpoint.id))
    // The attempt log says only that the host is not allowed: not where rebind.test points.
    expect(attempt).toMatchObject({ outcome: "failed", error_class: "ssrf_blocked", http_status: null, error_message: "URL host is not allowed." })
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
    // Never early: each retry is received no sooner than its delay after the failed one.
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(1000)
    expect(got[2]!.at - got[1]!.at).toBeGreaterThanOrEqual(2000)
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
    // Each retry is scheduled at the policy's delay after the failure plus at most 10 % jitter,
    // and is made no sooner than scheduled.
    expect(scheduledDelayMs(attempts[0]!)).toBeGreaterThanOrEqual(1000)
    expect(scheduledDelayMs(attempts[0]!)).toBeLessThanOrEqual(1100)
    expect(scheduledDelayMs(attempts[1]!)).toBeGreaterThanOrEqual(2000)
    expect(scheduledDelayMs(attempts[1]!)).toBeLessThanOrEqual(2200)
    expect(attempts[2]!.next_attempt_at).toBeNull()
    expect(Date.parse(attempts[0]!.next_attempt_at!)).toBeLessThanOrEqual(got[1]!.at)
    expect(Date.parse(attempts[1]!.next_attempt_at!)).toBeLessThanOrEqual(got[2]!.at)
  })

  describe("Retry-After", () => {
    // The policy's own delay is 1 s (custom [1]). A honoured Retry-After shows as a longer delay
    // scheduled in the attempt event (next_attempt_at − occurred_at: both come from the clock
    // reading at the failure), capped at MAX_RETRY_AFTER_SECONDS, plus at most 10 % jitter.
    const POLICY_DELAY_S = 1
    const HOUR_MS = 3_600_000
    const inAnHour = (receivedAt: number) => new Date(receivedAt + HOUR_MS).toUTCString()
    type Expected =
      | { readonly seconds: number }
      /** The HTTP date in the header: the retry is due no sooner than it. */
      | { readonly date: true }
    const cases: ReadonlyArray<{
      readonly name: string
      readonly status: number
      /** The header value, given the time the receiver got the request. */
      readonly header: (receivedAt: number) => string
      readonly expected: Expected
    }> = [
      { name: "429 honours delta-seconds", status: 429, header: () => "7", expected: { seconds: 7 } },
      { name: "503 honours delta-seconds", status: 503, header: () => "7", expected: { seconds: 7 } },
      { name: "429 honours an HTTP date", status: 429, header: inAnHour, expected: { date: true } },
      { name: "503 honours an HTTP date", status: 503, header: inAnHour, expected: { date: true } },
      {
        name: "429 delta-seconds capped at 24 h",
        status: 429,
        header: () => String(2 * MAX_RETRY_AFTER_SECONDS),
        expected: { seconds: MAX_RETRY_AFTER_SECONDS }
      },
      {
        name: "503 HTTP date capped at 24 h",
        status: 503,
        header: (at) => new Date(at + 3 * MAX_RETRY_AFTER_SECONDS * 1000).toUTCString(),
        expected: { seconds: MAX_RETRY_AFTER_SECONDS }
      },
      { name: "500 ignores it", status: 500, header: () => "7", expected: { seconds: POLICY_DELAY_S } },
      { name: "502 ignores it", status: 502, header: inAnHour, expected: { seconds: POLICY_DELAY_S } }
    ]

    it.each(cases)("$name", async ({ status, header, expected }) => {
      expect(MAX_RETRY_AFTER_SECONDS).toBe(86_400)
      const t = tenant()
      const path = `/retry-after-${randomUUID()}`
      let sent: { readonly value: string; readonly receivedAt: number } | undefined
      receiver.on(path, (_req, res, received) => {
        if (sent !== undefined) return void res.writeHead(204).end()
        sent = { value: header(received.at), receivedAt: received.at }
        res.writeHead(status, { "retry-after": sent.value }).end()
      })
      const endpoint = await h.register({ url: url(path), tenantId: t, retryPolicy: { strategy: "custom", delays_seconds: [POLICY_DELAY_S] } })
      await h.publish(domainEvent(t))
      const attempt = await waitFor("the failed attempt", () => attemptsOf(endpoint.id).find((a) => a.attempt === 1))
      expect(attempt).toMatchObject({ outcome: "failed", http_status: status, dead_lettered: false })
      if ("seconds" in expected) {
        expect(scheduledDelayMs(attempt)).toBeGreaterThanOrEqual(expected.seconds * 1000)
        expect(scheduledDelayMs(attempt)).toBeLessThanOrEqual(expected.seconds * 1100)
      } else {
        // Due no sooner than the date; the date is read a moment after receipt and rounded up to
        // whole seconds, so the delay is at most (date − receipt + 1 s) plus 10 % jitter.
        const date = Date.parse(sent!.value)
        expect(Date.parse(attempt.next_attempt_at!)).toBeGreaterThanOrEqual(date)
        expect(scheduledDelayMs(attempt)).toBeLessThanOrEqual((date - sent!.receivedAt + 1000) * 1.1)
      }
    })
  })

  it("cancels pending retries of a deleted endpoint", async () => {
    const t = tenant()
    receiver.on("/deleted", (_req, res) => res.writeHead(500).end())
    const endpoint = await h.register({ url: url("/deleted"), tenantId: t, retryPolicy: { strategy: "custom", delays_seconds: [2] } })
    const event = domainEvent(t)
    await h.publish(event)
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
    // The sentinel: the retry consumer group commits past the scheduled retry only once that
    // task was handled and its outcome (an attempt, or a cancellation) is durable.
    const retry = await findTask(h, tierTopics(h), (task) => task.delivery_id === deliveryIdFor(event.id, endpoint.id) && task.attempt === 2)
    await waitForCommittedPast(h, "orbit-dispatcher-retry", retry)
    expect(receiver.received.filter((r) => r.path === "/deleted")).toHaveLength(1)
    expect(attemptsOf(endpoint.id)).toHaveLength(1)
  })
})
