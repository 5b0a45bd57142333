/**
 * `makeEndOffsets` against the real broker: end offsets of a topic, and where a consumer group
 * stands on several topics at once (its committed offset, or the log's first stored offset where
 * it has committed none or what it committed was deleted).
 */
import { randomBytes } from "node:crypto"
import { afterAll, describe, expect, it } from "vitest"
import { brokersFromEnv, Kafka, logLevel, makeEndOffsets } from "../src/index.ts"

const brokers = brokersFromEnv()
const kafka = new Kafka({ clientId: "end-offsets-test", brokers, logLevel: logLevel.NOTHING })
const admin = kafka.admin()
const offsets = makeEndOffsets(kafka, brokers)
const suffix = `${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
const [a, b] = [`end_offsets_a_${suffix}`, `end_offsets_b_${suffix}`]

afterAll(async () => {
  await offsets.close()
  await admin.deleteTopics({ topics: [a, b] }).catch(() => undefined)
  await admin.disconnect()
})

describe("makeEndOffsets (real broker)", () => {
  it("reads end offsets, and a group's positions on several topics in one call", async () => {
    await admin.connect()
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: a, numPartitions: 2 }, { topic: b, numPartitions: 1 }] })
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    const records = (partition: number, n: number) => Array.from({ length: n }, (_, i) => ({ partition, value: `r${i}` }))
    await producer.send({ topic: a, acks: -1, messages: [...records(0, 5), ...records(1, 3)] })
    await producer.send({ topic: b, acks: -1, messages: records(0, 4) })
    await producer.disconnect()

    expect([...await offsets.endOffsets(a)].sort((x, y) => x.partition - y.partition)).toEqual([
      { partition: 0, offset: "5" },
      { partition: 1, offset: "3" }
    ])

    // The group committed on a's partition 0 only; b's first two records are deleted.
    const groupId = `end_offsets_group_${suffix}`
    await admin.setOffsets({ groupId, topic: a, partitions: [{ partition: 0, offset: "2" }] })
    // kafkajs' admin deletes records only on topics whose metadata it holds.
    await admin.fetchTopicMetadata({ topics: [b] })
    await admin.deleteTopicRecords({ topic: b, partitions: [{ partition: 0, offset: "2" }] })

    const positions = await offsets.groupPositions(groupId, [a, b])
    expect([...positions.keys()]).toEqual([a, b])
    expect([...positions.get(a)!].sort((x, y) => x.partition - y.partition)).toEqual([
      { partition: 0, end: 5n, committed: 2n },
      { partition: 1, end: 3n, committed: 0n }
    ])
    expect(positions.get(b)).toEqual([{ partition: 0, end: 4n, committed: 2n }])
  }, 60_000)
})
