/** A hanging endpoint holds only its own slots: other endpoints' deliveries keep flowing. */
import { randomUUID } from "node:crypto"
import { deliveryIdFor, retryTiersOf } from "@orbit/domain"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { domainEvent, type Harness, makeCert, makeHarness, type Receiver, startReceiver, waitFor } from "./support.ts"

let tls: ReturnType<typeof makeCert>
let receiver: Receiver
let h: Harness

beforeAll(async () => {
  tls = makeCert()
  receiver = await startReceiver(tls)
  h = await makeHarness("isolation")
  await h.startDispatcher({
    ORBIT_EXTRA_CA_FILE: tls.caFile,
    ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
    DISPATCHER_PER_ENDPOINT_CONCURRENCY: "4"
  })
})

afterAll(async () => {
  await h?.close()
  await receiver?.close()
  tls?.cleanup()
})

describe("slow-endpoint isolation", () => {
  it("delivers to healthy endpoints while another hangs until its timeout", async () => {
    const t = `ten_${randomUUID()}`
    let slowInFlight = 0
    let slowMax = 0
    receiver.on("/slow", (_req, res) => {
      slowInFlight++
      slowMax = Math.max(slowMax, slowInFlight)
      res.on("close", () => slowInFlight--)
      // never answers: the dispatcher aborts at timeout_seconds
    })
    const slow = await h.register({ url: `https://hooks.test:${receiver.port}/slow`, tenantId: t, timeoutSeconds: 8 })
    await h.register({ url: `https://hooks.test:${receiver.port}/fast`, tenantId: t })
    const started = Date.now()
    for (let i = 0; i < 40; i++) await h.publish(domainEvent(t, "message.sent", { message_id: `m${i}` }))

    await waitFor("all fast deliveries", () => receiver.received.filter((r) => r.path === "/fast").length >= 40, 15_000)
    const fastDone = Date.now() - started
    // The slow endpoint got only its 4 slots and none of them has timed out yet.
    expect(fastDone).toBeLessThan(8000)
    expect(slowMax).toBeLessThanOrEqual(4)
    expect(h.attempts.filter((a) => a.endpoint_id === slow.id)).toHaveLength(0)

    // Then its attempts time out, 4 at a time.
    await waitFor("slow attempts time out", () => h.attempts.filter((a) => a.endpoint_id === slow.id).length >= 4, 15_000)
    expect(h.attempts.filter((a) => a.endpoint_id === slow.id).every((a) => a.error_class === "timeout")).toBe(true)
  })

  it("parks an unresponsive endpoint's waiting tasks in a retry tier, attempts unspent, and delivers them once it answers", async () => {
    const t = `ten_${randomUUID()}`
    let hanging = true
    let inFlight = 0
    let maxInFlight = 0
    receiver.on("/recovering", (_req, res) => {
      if (!hanging) return void res.writeHead(200).end("ok")
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      res.on("close", () => inFlight--) // never answers: aborted at timeout_seconds
    })
    // One attempt per delivery (the harness's default policy): a task parked and then delivered
    // can only be an attempt 1 that parking did not spend.
    const endpoint = await h.register({ url: `https://hooks.test:${receiver.port}/recovering`, tenantId: t, timeoutSeconds: 1 })
    const admin = h.kafka.admin()
    await admin.connect()
    const parkedSoFar = async () => {
      let n = 0
      for (const tier of retryTiersOf(h.topics)) {
        for (const p of await admin.fetchTopicOffsets(tier.topic)) n += Number(p.high)
      }
      return n
    }
    const parkedBefore = await parkedSoFar()
    const events = Array.from({ length: 12 }, () => domainEvent(t))
    for (const e of events) await h.publish(e)

    // Four attempts (its slots) time out; the eight waiting behind them are parked, not attempted.
    const attemptsOf = () => h.attempts.filter((a) => a.endpoint_id === endpoint.id)
    await waitFor("four timeouts", () => attemptsOf().length >= 4, 15_000)
    hanging = false
    await waitFor("the other eight delivered", () => receiver.received.filter((r) => r.path === "/recovering").length >= 12, 20_000)
    const parked = (await parkedSoFar()) - parkedBefore
    await admin.disconnect()

    expect(maxInFlight).toBeLessThanOrEqual(4)
    expect(parked).toBeGreaterThanOrEqual(8)
    const timedOut = attemptsOf().filter((a) => a.error_class === "timeout")
    expect(timedOut).toHaveLength(4)
    await waitFor("eight successes logged", () => attemptsOf().filter((a) => a.outcome === "succeeded").length >= 8, 10_000)
    const succeeded = attemptsOf().filter((a) => a.outcome === "succeeded")
    expect(succeeded.every((a) => a.attempt === 1)).toBe(true)
    // Every event reached the endpoint once as an attempt that timed out or once delivered.
    const ids = new Set(events.map((e) => deliveryIdFor(e.id, endpoint.id)))
    expect(new Set([...timedOut, ...succeeded].map((a) => a.delivery_id))).toEqual(ids)
  })
})
