/** A hanging endpoint holds only its own slots: other endpoints' deliveries keep flowing. */
import { randomUUID } from "node:crypto"
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
})
