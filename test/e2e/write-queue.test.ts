/**
 * Issue 17: the write queue is bounded. A registration beyond `ORBIT_WRITE_QUEUE_SIZE` writes in
 * flight is answered 503 SERVICE_UNAVAILABLE with Retry-After at once, writes nothing (no record
 * in Kafka, its Idempotency-Key left free), and is accepted once a place is free.
 */
import { topicsFor } from "@orbit/domain"
import { afterAll, describe, expect, it } from "vitest"
import { logEnd } from "../src/KafkaLog.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const BASE = "/api/v1/webhooks"
const body = (description: string) => ({ url: "https://93.184.216.34/queue", events: ["message.delivered"], description })

let platform: Platform | undefined
afterAll(() => platform?.close())

describe("bounded write queue", () => {
  it("a registration beyond the queue's size is answered 503 with Retry-After, writes nothing, and goes through later", async () => {
    // One place in the queue, and no projection yet: a registration holds its place for the whole
    // read-your-writes wait, so the test knows when the queue is full without timing anything.
    platform = await startPlatform({ services: ["registration"], env: { ORBIT_WRITE_QUEUE_SIZE: "1" } })
    const p = platform
    const tenant = uniqueTenant()
    const { key } = await p.createKey(tenant)
    const topic = topicsFor(p.topicPrefix).endpointEvents.name

    const first = p.api("POST", BASE, { key, body: body("first"), headers: { "idempotency-key": "first" } })
    await p.waitFor("the first registration's event to be in Kafka", async () => (await logEnd(topic)) === 1n)

    const busy = await p.api("POST", BASE, { key, body: body("second"), headers: { "idempotency-key": "second" } })
    expect(busy.status, busy.text).toBe(503)
    expect(busy.json.error).toMatchObject({ code: "SERVICE_UNAVAILABLE", status: 503 })
    expect(busy.headers.get("retry-after")).toBe("1")
    expect(busy.headers.get("x-request-id")).toBe(busy.json.meta.request_id)
    // Nothing of it was written: Kafka holds the first registration only, and its key is free.
    expect(await logEnd(topic)).toBe(1n)
    const keys = await p.sql<Array<{ key: string }>>`SELECT key FROM idempotency_keys WHERE tenant_id = ${tenant} ORDER BY key`
    expect(keys.map((k) => k.key)).toEqual(["first"])

    // The projection starts: the first registration is applied and answered, its place freed.
    p.start("projection")
    const firstRes = await first
    expect(firstRes.status, firstRes.text).toBe(201)
    const again = await p.api("POST", BASE, { key, body: body("second"), headers: { "idempotency-key": "second" } })
    expect(again.status, again.text).toBe(201)
    const read = await p.api("GET", `${BASE}/${again.json.data.id}`, { key })
    expect(read.status).toBe(200)
    expect(read.json.data.description).toBe("second")
  })
})
