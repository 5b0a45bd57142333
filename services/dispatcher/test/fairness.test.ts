/**
 * Fairness across tenants through the real dispatcher: one tenant's slow endpoints cannot take the
 * whole delivery pool; another tenant's delivery starts while they all still hang.
 */
import { randomUUID } from "node:crypto"
import type { ServerResponse } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { domainEvent, type Harness, makeCert, makeHarness, type Receiver, startReceiver, waitFor } from "./support.ts"

let tls: ReturnType<typeof makeCert>
let receiver: Receiver
let h: Harness

beforeAll(async () => {
  tls = makeCert()
  receiver = await startReceiver(tls)
  h = await makeHarness("fairness")
  await h.startDispatcher({
    ORBIT_EXTRA_CA_FILE: tls.caFile,
    ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
    // A pool of 8, one slot per endpoint: tenant A's 12 endpoints want more than the pool.
    DISPATCHER_CONCURRENCY: "8",
    DISPATCHER_PER_ENDPOINT_CONCURRENCY: "1"
  })
})

afterAll(async () => {
  await h?.close()
  await receiver?.close()
  tls?.cleanup()
})

describe("fairness across tenants", () => {
  it("starts another tenant's delivery while one tenant's slow endpoints want every slot", async () => {
    const a = `ten_a_${randomUUID()}`
    const b = `ten_b_${randomUUID()}`
    const held: Array<ServerResponse> = []
    let answering = false
    const slow: Array<string> = []
    for (let i = 0; i < 12; i++) {
      receiver.on(`/a/${i}`, (_req, res) => {
        if (answering) res.writeHead(200).end("ok")
        else held.push(res)
      })
      slow.push((await h.register({ url: `https://hooks.test:${receiver.port}/a/${i}`, tenantId: a, timeoutSeconds: 120 })).id)
    }
    const fast = await h.register({ url: `https://hooks.test:${receiver.port}/b`, tenantId: b })
    await h.publish(domainEvent(a))
    await h.publish(domainEvent(a))

    // Tenant A holds all it may: the pool less the reserve no tenant takes (an eighth: 1 of 8).
    await waitFor("tenant A's requests held", () => held.length >= 7)
    await h.publish(domainEvent(b))
    await waitFor("tenant B's delivery", () => h.attempts.find((x) => x.endpoint_id === fast.id), 20_000)
    expect(held).toHaveLength(7) // none of A's answered meanwhile, and A never had the 8th slot
    expect(h.attempts.filter((x) => slow.includes(x.endpoint_id))).toHaveLength(0)

    answering = true
    for (const res of held.splice(0)) res.writeHead(200).end("ok")
    await waitFor("tenant A's 24 deliveries", () => h.attempts.filter((x) => slow.includes(x.endpoint_id)).length >= 24, 30_000)
  })
})
