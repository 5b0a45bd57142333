/** A hanging endpoint holds only its own slots: other endpoints' deliveries keep flowing. */
import { randomUUID } from "node:crypto"
import type { ServerResponse } from "node:http"
import { deliveryIdFor } from "@orbit/domain"
import { delayTiersOf } from "@orbit/kafka"
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
  it("delivers to healthy endpoints while another holds all its slots", async () => {
    const t = `ten_${randomUUID()}`
    // The slow endpoint's requests stay open until the test answers them (its timeout is far
    // beyond the test's waits): every fast delivery must arrive while all of them are held.
    const held: Array<ServerResponse> = []
    let answering = false
    let slowInFlight = 0
    let slowMax = 0
    // In flight: received and not yet answered (the dispatcher cannot see an answer sooner).
    const answer = (res: ServerResponse) => {
      slowInFlight--
      res.writeHead(200).end("ok")
    }
    receiver.on("/slow", (_req, res) => {
      slowInFlight++
      slowMax = Math.max(slowMax, slowInFlight)
      if (answering) answer(res)
      else held.push(res)
    })
    const slow = await h.register({ url: `https://hooks.test:${receiver.port}/slow`, tenantId: t, timeoutSeconds: 120 })
    await h.register({ url: `https://hooks.test:${receiver.port}/fast`, tenantId: t })
    for (let i = 0; i < 40; i++) await h.publish(domainEvent(t, "message.sent", { message_id: `m${i}` }))

    await waitFor("the slow endpoint's 4 slots taken", () => held.length >= 4)
    await waitFor("all fast deliveries", () => receiver.received.filter((r) => r.path === "/fast").length >= 40, 30_000)
    // Meanwhile nothing of the slow endpoint finished, and it never had more than its 4 slots.
    expect(held).toHaveLength(4)
    expect(slowInFlight).toBe(4)
    expect(slowMax).toBe(4)
    expect(h.attempts.filter((a) => a.endpoint_id === slow.id)).toHaveLength(0)

    // Once it answers, its 40 deliveries go through, still at most 4 at a time.
    answering = true
    for (const res of held) answer(res)
    await waitFor("slow deliveries", () => h.attempts.filter((a) => a.endpoint_id === slow.id).length >= 40, 30_000)
    expect(h.attempts.filter((a) => a.endpoint_id === slow.id).every((a) => a.outcome === "succeeded")).toBe(true)
    expect(slowMax).toBe(4)
  })

  it("parks an unresponsive endpoint's waiting tasks in a retry tier, attempts unspent, and delivers them once it answers", async () => {
    const t = `ten_${randomUUID()}`
    // The first four requests (the endpoint's slots) hang until the dispatcher aborts them; every
    // later one is answered. The receiver decides, so no later request can hang by arriving before
    // the test has noticed the timeouts.
    let hung = 0
    let inFlight = 0
    let maxInFlight = 0
    receiver.on("/recovering", (_req, res) => {
      if (hung >= 4) return void res.writeHead(200).end("ok")
      hung++
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
      for (const tier of delayTiersOf(h.topics)) {
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
