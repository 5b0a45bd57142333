import { Kafka, logLevel } from "@orbit/kafka"
import { brokers } from "../../infra/kafka.ts"

const kafka = new Kafka({ clientId: "e2e-kafka-log", brokers: brokers(), logLevel: logLevel.NOTHING })

/** The sum over a topic's partitions of their end offsets now: how many records it has ever had. */
export const logEnd = async (topic: string) => {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  return ends.reduce((s, e) => s + BigInt(e.high), 0n)
}

/** Every record of a topic (its value as text), read from offset 0 up to the end offsets measured now. */
export const readAll = async (topic: string) => {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  const remaining = new Map(ends.filter((e) => e.high !== "0").map((e) => [e.partition, BigInt(e.high)]))
  const values: Array<string> = []
  if (remaining.size === 0) return values
  const consumer = kafka.consumer({ groupId: `read-all-${Date.now()}-${Math.random()}` })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        values.push(message.value?.toString("utf8") ?? "")
        if (BigInt(message.offset) + 1n >= (remaining.get(partition) ?? 0n)) remaining.delete(partition)
        if (remaining.size === 0) resolve()
      }
    })
  })
  await consumer.disconnect()
  return values
}
