/**
 * `Producer` against the real broker: callers that send at the same time share produce requests,
 * and each one learns where its own records landed. Every offset a `send` answers is read back
 * from the topic and must hold exactly the record that caller sent there.
 */
import { randomBytes } from "node:crypto"
import { ConfigProvider, Effect, Layer } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { brokersFromEnv, Kafka, KafkaClient, logLevel, Producer } from "../src/index.ts"

const kafka = new Kafka({ clientId: "producer-test", brokers: brokersFromEnv(), logLevel: logLevel.NOTHING })
const topics: Array<string> = []

afterAll(async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.deleteTopics({ topics }).catch(() => undefined)
  await admin.disconnect()
})

/** Every record of `topic` by "partition|offset", read from the start up to `count` records. */
const readBack = async (topic: string, count: number) => {
  const records = new Map<string, string>()
  const consumer = kafka.consumer({ groupId: `${topic}_reader` })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        records.set(`${partition}|${message.offset}`, message.value!.toString())
        if (records.size === count) resolve()
      }
    })
  })
  await consumer.disconnect()
  return records
}

describe("Producer", () => {
  it("merges concurrent sends into shared requests and answers each caller its own records' offsets", async () => {
    const topic = `producer_offsets_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
    topics.push(topic)
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] })
    await admin.disconnect()

    const CALLERS = 200
    // Callers of one to three records each, keys spread over the partitions, all sent at once.
    const batches = Array.from({ length: CALLERS }, (_, c) =>
      Array.from({ length: 1 + (c % 3) }, (_, r) => ({ key: `endpoint-${(c * 7 + r) % 23}`, value: `caller ${c} record ${r}` })))
    const env = { KAFKA_BROKERS: brokersFromEnv().join(","), ORBIT_TOPIC_PREFIX: "" }
    const answers = await Effect.runPromise(
      Effect.gen(function*() {
        const producer = yield* Producer
        return yield* Effect.forEach(batches, (messages) => producer.send(topic, messages), { concurrency: "unbounded" })
      }).pipe(
        Effect.scoped,
        Effect.provide(Producer.layer({ sendTimeout: "60 seconds" }).pipe(
          Layer.provideMerge(KafkaClient.layer),
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { ...process.env, ...env } as Record<string, string> })))
        ))
      )
    )

    const total = batches.reduce((n, b) => n + b.length, 0)
    const records = await readBack(topic, total)
    const seen = new Set<string>()
    for (let c = 0; c < CALLERS; c++) {
      expect(answers[c], `caller ${c}`).toHaveLength(batches[c]!.length)
      answers[c]!.forEach((at, r) => {
        expect(at.topicName).toBe(topic)
        const where = `${at.partition}|${at.offset}`
        expect(records.get(where), `caller ${c} record ${r} at ${where}`).toBe(`caller ${c} record ${r}`)
        seen.add(where)
      })
    }
    expect(seen.size).toBe(total)
  })
})
