/**
 * Issue 17, the write path. Read-your-writes holds for concurrent registrations that share produce
 * requests: none is answered before the projection has applied it, and the projection's one
 * commit answers them all. The write queue is bounded: a registration beyond
 * `ORBIT_WRITE_QUEUE_SIZE` writes in flight is answered 503 SERVICE_UNAVAILABLE with Retry-After at
 * once, writes nothing (no record in Kafka, its Idempotency-Key left free), and is accepted once a
 * place is free. The projection applies the partitions of the endpoint topic side by side: a
 * partition whose batch cannot be applied does not hold up the read-your-writes of the others.
 */
import { topicsFor } from "@orbit/domain"
import { KeyPartitioner } from "@orbit/kafka"
import { afterAll, describe, expect, it } from "vitest"
import { logEnd, partitionEnd } from "../src/KafkaLog.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const BASE = "/api/v1/webhooks"
const body = (description: string) => ({ url: "https://93.184.216.34/queue", events: ["message.delivered"], description })

const platforms: Array<Platform> = []
afterAll(async () => {
  for (const p of platforms) await p.close()
})

describe("read-your-writes under concurrency", () => {
  it("concurrent registrations are answered only once the projection has applied them, and then all of them", async () => {
    const p = await startPlatform()
    platforms.push(p)
    const { key } = await p.createKey(uniqueTenant())
    const topic = topicsFor(p.topicPrefix).endpointEvents.name
    const CONCURRENT = 64
    // The projection's advisory lock, held by the test: the projection fetches the events but
    // cannot apply them until it is released.
    const held = await p.sql.reserve()
    await held`SELECT pg_advisory_lock(hashtext(${"orbit-projection:endpoints"}))`
    let answered = 0
    const posts = Array.from({ length: CONCURRENT }, (_, i) =>
      p.api("POST", BASE, { key, body: body(`concurrent ${i}`) }).finally(() => answered++))
    try {
      await p.waitFor("every registration's event to be in Kafka", async () => (await logEnd(topic)) === BigInt(CONCURRENT))
      // Durable in Kafka, not yet applied: no registration has been answered.
      expect(answered).toBe(0)
    } finally {
      await held`SELECT pg_advisory_unlock(hashtext(${"orbit-projection:endpoints"}))`
      held.release()
    }
    const answers = await Promise.all(posts)
    for (const res of answers) {
      expect(res.status, res.text).toBe(201)
      const read = await p.api("GET", `${BASE}/${res.json.data.id}`, { key })
      expect(read.status).toBe(200)
      expect(read.json.data.description).toBe(res.json.data.description)
    }
    expect(new Set(answers.map((r) => r.json.data.id)).size).toBe(CONCURRENT)
  })
})

describe("partitions applied side by side", () => {
  it("a registration is applied and readable while another partition's batch is held", async () => {
    const p = await startPlatform()
    platforms.push(p)
    const { key } = await p.createKey(uniqueTenant())
    const topic = topicsFor(p.topicPrefix).endpointEvents
    // The partition an endpoint's events go to, as the producer picks it (keyed by endpoint id).
    const partitionMetadata = Array.from({ length: topic.partitions }, (_, partitionId) => ({ partitionId, leader: 1, replicas: [1], isr: [1], partitionErrorCode: 0 }))
    const partitioner = KeyPartitioner()
    const partitionOf = (id: string) => partitioner({ topic: topic.name, partitionMetadata, message: { key: id, value: null } })
    const stored = async () =>
      new Map((await p.sql<Array<{ partition: number; next_offset: string }>>`
        SELECT partition, next_offset FROM projection_offsets WHERE projection = 'endpoints' AND topic = ${topic.name}`)
        .map((r) => [r.partition, BigInt(r.next_offset)]))
    // Registrations until every partition has a stored offset, i.e. a row the test can lock.
    while ((await stored()).size < topic.partitions) {
      const res = await p.api("POST", BASE, { key, body: body("warm-up") })
      expect(res.status, res.text).toBe(201)
    }
    // Partition 0's stored offset, locked by the test: the projection fetches its next batch but
    // cannot apply it until the lock is released.
    const held = await p.sql.reserve()
    await held`BEGIN`
    await held`SELECT next_offset FROM projection_offsets WHERE projection = 'endpoints' AND topic = ${topic.name} AND partition = 0 FOR UPDATE`
    const blocked = (await stored()).get(0)!
    const posts: Array<Promise<{ status: number; json: any; text: string }>> = []
    try {
      // Registrations one after another until one of them is in partition 0 (its batch is then
      // fetched and held): only then do the others count.
      let inZero = false
      while (!inZero) {
        const post = p.api("POST", BASE, { key, body: body("held") })
        posts.push(post)
        const answered = post.then(() => true)
        await p.waitFor("the registration answered, or its event in the held partition", async () =>
          (await Promise.race([answered, Promise.resolve(false)])) || (inZero = (await partitionEnd(topic.name, 0)) > blocked))
      }
      // Registrations sent after partition 0's batch is held: those of the other partitions are
      // answered, and readable, while it is held.
      const later = Array.from({ length: 12 }, (_, i) => p.api("POST", BASE, { key, body: body(`later ${i}`) }))
      posts.push(...later)
      const answered: Array<{ status: number; json: any; text: string }> = []
      await p.waitFor("a later registration answered", async () => {
        answered.length = 0
        for (const post of later) {
          const res = await Promise.race([post, Promise.resolve(undefined)])
          if (res !== undefined) answered.push(res)
        }
        return answered.length > 0
      })
      for (const res of answered) {
        expect(res.status, res.text).toBe(201)
        expect(partitionOf(res.json.data.id)).not.toBe(0)
        const read = await p.api("GET", `${BASE}/${res.json.data.id}`, { key })
        expect(read.status, read.text).toBe(200)
      }
      // Still held: partition 0 has not moved.
      expect((await stored()).get(0)).toBe(blocked)
    } finally {
      await held`ROLLBACK`
      held.release()
    }
    // Released: every registration is answered and readable.
    for (const res of await Promise.all(posts)) {
      expect(res.status, res.text).toBe(201)
      expect((await p.api("GET", `${BASE}/${res.json.data.id}`, { key })).status).toBe(200)
    }
  })
})

describe("bounded write queue", () => {
  it("a registration beyond the queue's size is answered 503 with Retry-After, writes nothing, and goes through later", async () => {
    // One place in the queue, and no projection yet: a registration holds its place for the whole
    // read-your-writes wait, so the test knows when the queue is full without timing anything.
    const p = await startPlatform({ services: ["registration"], env: { ORBIT_WRITE_QUEUE_SIZE: "1" } })
    platforms.push(p)
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
