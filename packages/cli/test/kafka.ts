import { randomBytes } from "node:crypto"
import { topicsFor } from "@orbit/domain"
import { brokersFromEnv } from "@orbit/kafka"
import { Kafka, logLevel } from "@orbit/kafka"

const kafka = new Kafka({ clientId: "cli-test", brokers: brokersFromEnv(), logLevel: logLevel.NOTHING })

/**
 * Runs `f` until it succeeds (30 tries, a second apart): a topic just created can answer "does not
 * host this topic-partition" until its leader is known everywhere. Only for reads: a retried send
 * could write its records twice.
 */
const retrying = async <A>(f: () => Promise<A>): Promise<A> => {
  for (let i = 0;; i++) {
    try {
      return await f()
    } catch (error) {
      if (i >= 30) throw error
      await new Promise((r) => setTimeout(r, 1000))
    }
  }
}

/** A topic prefix of the test's own, with every platform topic created under it (as the platform's start does). */
export const platformTopics = async (name: string) => {
  const prefix = `${name}${Date.now().toString(36)}${randomBytes(3).toString("hex")}_`
  const topics = topicsFor(prefix)
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: Object.values(topics).map((t) => ({ topic: t.name, numPartitions: t.partitions }))
    })
    // Ready once every partition has a leader that answers for it.
    for (const t of Object.values(topics)) await retrying(() => admin.fetchTopicOffsets(t.name))
  } finally {
    await admin.disconnect()
  }
  return {
    prefix,
    topics,
    drop: async () => {
      const a = kafka.admin()
      await a.connect()
      await a.deleteTopics({ topics: Object.values(topics).map((t) => t.name) }).finally(() => a.disconnect())
    }
  }
}

/** Every record of a topic (key and value as text), read by a real consumer from offset 0 up to the end offsets measured now. */
export const readAll = async (topic: string): Promise<Array<{ key: string; value: string }>> => {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await retrying(() => admin.fetchTopicOffsets(topic)).finally(() => admin.disconnect())
  const remaining = new Map(ends.filter((e) => e.high !== "0").map((e) => [e.partition, BigInt(e.high)]))
  const records: Array<{ key: string; value: string }> = []
  if (remaining.size === 0) return records
  const consumer = kafka.consumer({ groupId: `cli-test-read-${randomBytes(6).toString("hex")}` })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        records.push({ key: message.key?.toString("utf8") ?? "", value: message.value?.toString("utf8") ?? "" })
        if (BigInt(message.offset) + 1n >= (remaining.get(partition) ?? 0n)) remaining.delete(partition)
        if (remaining.size === 0) resolve()
      }
    })
  })
  await consumer.disconnect()
  return records
}

/** Publishes records as a service does (acks from all replicas). */
export const publish = async (topic: string, messages: Array<{ key: string; value: string }>) => {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  await producer.send({ topic, acks: -1, messages }).finally(() => producer.disconnect())
}

/** The consumer groups the broker knows. */
export const groupIds = async () => {
  const admin = kafka.admin()
  await admin.connect()
  const { groups } = await admin.listGroups().finally(() => admin.disconnect())
  return groups.map((g) => g.groupId)
}
