/**
 * `DecoupledConsumer` against the real broker: after kafkajs crashes with an error it does not
 * restart on by itself, the consumer comes back, takes every record (those before the crash and
 * those published after it) and commits up to the end of the topic. With `abandonRevoked`, a
 * record whose partition a rebalance gives to another member is abandoned by the first, and the
 * new owner takes it.
 */
import { randomBytes } from "node:crypto"
import { afterAll, describe, expect, it, vi } from "vitest"
import { Abandoned, brokersFromEnv, DecoupledConsumer, Kafka, KafkaJSNonRetriableError, logLevel } from "../src/index.ts"

const kafka = new Kafka({ clientId: "decoupled-consumer-test", brokers: brokersFromEnv(), logLevel: logLevel.NOTHING })

/** Waits until `f` holds (polled by vitest); fails naming `what` after `timeoutMs`. */
const waitFor = (what: string, f: () => boolean, timeoutMs = 20_000) =>
  vi.waitFor(() => {
    if (!f()) throw new Error(`timed out waiting for ${what}`)
  }, { timeout: timeoutMs, interval: 25 })

const topics: Array<string> = []

afterAll(async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.deleteTopics({ topics }).catch(() => undefined)
  await admin.disconnect()
})

describe("DecoupledConsumer", () => {
  it("recovers from a kafkajs crash that kafkajs does not restart: nothing is lost or left uncommitted", async () => {
    const topic = `decoupled_crash_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
    const groupId = `${topic}_group`
    topics.push(topic)
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] })
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    const publish = (from: number, count: number) =>
      producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: count }, (_, i) => ({ key: `k${(from + i) % 7}`, value: `r${from + i}` }))
      })

    const handled = new Set<string>()
    const errors: Array<string> = []
    let joins = 0
    let crashes = 0
    const consumer = new DecoupledConsumer({
      kafka,
      groupId,
      topics: [topic],
      maxOutstanding: 100,
      handle: async (_topic, _partition, message) => {
        handled.add(message.value!.toString())
      },
      // The fault: the first time record r5 is looked at, the kafkajs callback throws an error
      // kafkajs treats as fatal (no restart of its own), as a failed rejoin does on a broker restart.
      notBefore: (_topic, message) => {
        if (message.value!.toString() === "r5" && crashes++ === 0) throw new KafkaJSNonRetriableError("injected crash")
        return undefined
      },
      onError: (message) => errors.push(message),
      onJoin: () => void joins++
    })
    try {
      await publish(0, 20)
      await consumer.start()
      await waitFor("the crash", () => crashes > 0, 30_000)
      // Published after the crash: taken only by a consumer that came back.
      await publish(20, 20)
      await waitFor("every record handled", () => handled.size === 40, 60_000)
      expect([...handled].sort()).toEqual(Array.from({ length: 40 }, (_, i) => `r${i}`).sort())
      expect(joins).toBeGreaterThanOrEqual(2) // it rejoined the group after the crash
      // Its commits reach the end of every partition.
      const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.offset]))
      const committed = async () =>
        Object.fromEntries((await admin.fetchOffsets({ groupId, topics: [topic] }))[0]!.partitions.map((p) => [p.partition, p.offset]))
      const deadline = Date.now() + 30_000
      while (JSON.stringify(await committed()) !== JSON.stringify(Object.fromEntries(ends)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(await committed()).toEqual(Object.fromEntries(ends))
      expect(errors).not.toContain("offset commit failed")
    } finally {
      await consumer.stop(1_000)
      await producer.disconnect()
      await admin.disconnect()
    }
  }, 120_000)

  it("with abandonRevoked, aborts the handlers of a partition a rebalance gives away; the new owner takes their records", async () => {
    const topic = `decoupled_revoke_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
    const groupId = `${topic}_group`
    topics.push(topic)
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] })
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    await producer.send({ topic, acks: -1, messages: [0, 1].map((partition) => ({ partition, value: `p${partition}` })) })

    // The first member holds each record until its signal aborts; the second finishes at once.
    const abandoned: Array<number> = []
    const heldBy1 = new Set<number>()
    const first = new DecoupledConsumer({
      kafka, groupId, topics: [topic], maxOutstanding: 100, abandonRevoked: true, sessionTimeoutMs: 10_000,
      handle: (_topic, partition, _message, signal) =>
        new Promise<void>((_resolve, reject) => {
          heldBy1.add(partition)
          signal.addEventListener("abort", () => {
            abandoned.push(partition)
            reject(new Abandoned())
          }, { once: true })
        })
    })
    const doneBy2: Array<number> = []
    const second = new DecoupledConsumer({
      kafka, groupId, topics: [topic], maxOutstanding: 100, abandonRevoked: true, sessionTimeoutMs: 10_000,
      handle: async (_topic, partition) => void doneBy2.push(partition)
    })
    try {
      await first.start()
      await waitFor("the first member to hold both records", () => heldBy1.size === 2, 30_000)
      await second.start()
      // The rebalance gives one partition to the second member: the first abandons that one only.
      await waitFor("the second member to finish a record", () => doneBy2.length === 1, 60_000)
      expect(abandoned).toEqual(doneBy2) // the partition it kept is still held, its signal not aborted
    } finally {
      await second.stop(1_000)
      await first.stop(500)
      await producer.disconnect()
      await admin.disconnect()
    }
  }, 120_000)
})
