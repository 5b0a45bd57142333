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

/** One partition's end offset now. */
export const partitionEnd = async (topic: string, partition: number) => {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  return BigInt(ends.find((e) => e.partition === partition)?.high ?? "0")
}

/** A record as a test reads it back: key, value and headers as text. */
export interface LogRecord {
  readonly key: string | null
  readonly value: string
  readonly headers: Record<string, string>
}

/** Every record of a topic (key, value and headers as text), read from offset 0 up to the end offsets measured now. */
export const readRecords = async (topic: string): Promise<Array<LogRecord>> => {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  const remaining = new Map(ends.filter((e) => e.high !== "0").map((e) => [e.partition, BigInt(e.high)]))
  const records: Array<LogRecord> = []
  if (remaining.size === 0) return records
  const consumer = kafka.consumer({ groupId: `read-all-${Date.now()}-${Math.random()}` })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        records.push({
          key: message.key?.toString("utf8") ?? null,
          value: message.value?.toString("utf8") ?? "",
          headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v ?? "")]))
        })
        if (BigInt(message.offset) + 1n >= (remaining.get(partition) ?? 0n)) remaining.delete(partition)
        if (remaining.size === 0) resolve()
      }
    })
  })
  await consumer.disconnect()
  return records
}

/** Every record of a topic (its value as text), read from offset 0 up to the end offsets measured now. */
export const readAll = async (topic: string) => (await readRecords(topic)).map((r) => r.value)
