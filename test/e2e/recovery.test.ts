/**
 * How the platform's Kafka clients come back after a broker crash, pinned on the mechanism rather
 * than on elapsed time (the host is loaded; the end-to-end resume times are printed by
 * dispatcher-faults.test.ts and durability.test.ts):
 * - a consumer group member whose broker was killed (kill -9) rejoins as the member it was, so the
 *   coordinator (which reloads the group with its old members) lets it straight back in instead of
 *   holding the rebalance until the old member's session times out;
 * - every client's retry back-off is capped at `RECONNECT_MAX_DELAY_MS`, which bounds how late
 *   a client notices that the broker answers again.
 */
import { randomBytes } from "node:crypto"
import { Kafka, logLevel, RECONNECT_MAX_DELAY_MS, reconnectDelays } from "@orbit/kafka"
import { describe, expect, it } from "vitest"
import { startOwnKafka } from "../src/OwnKafka.ts"

const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("recovery from a broker crash", () => {
  it("the retry back-off of every client is capped, and untilDone's delays follow it", () => {
    const delays = reconnectDelays(200)
    const first = Array.from({ length: 6 }, () => delays.next().value)
    expect(first).toEqual([200, 400, 800, RECONNECT_MAX_DELAY_MS, RECONNECT_MAX_DELAY_MS, RECONNECT_MAX_DELAY_MS])
    expect(RECONNECT_MAX_DELAY_MS).toBeLessThanOrEqual(1_000)
  })

  it("a consumer group member rejoins as the member it was after kill -9 of its broker", async () => {
    // A broker of this test's own: it is killed, so it must be one no other test or checkout uses.
    const own = await startOwnKafka()
    const kafka = new Kafka({
      clientId: "recovery-test",
      brokers: own.brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 60, initialRetryTime: 200, maxRetryTime: 1_000 }
    })
    const topic = `recovery_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
    const groupId = `${topic}_group`
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    // Far longer than a rejoin takes: a member that came back as a stranger would wait this long.
    const sessionTimeoutMs = 60_000
    // A consumer as the platform's are built (DecoupledConsumer, consumeBatches): kafkajs' own,
    // whose crash (the broker gone) kafkajs restarts with a new ConsumerGroup.
    const consumer = kafka.consumer({
      groupId,
      sessionTimeout: sessionTimeoutMs,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: 100,
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: RECONNECT_MAX_DELAY_MS }
    })
    const handled = new Set<string>()
    const joins: Array<string> = []
    const crashes: Array<boolean> = []
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => void joins.push(payload.memberId))
    consumer.on(consumer.events.CRASH, ({ payload }) => void crashes.push(payload.restart))
    try {
      const admin = kafka.admin()
      await admin.connect()
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] })
      await admin.disconnect()
      await producer.connect()
      await consumer.connect()
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({ eachMessage: async ({ message }) => void handled.add(message.value!.toString()) })
      await producer.send({ topic, acks: -1, messages: [{ key: "a", value: "before" }] })
      await waitFor("the record published before the crash", () => handled.has("before"), 60_000)
      const member = joins.at(-1)!

      await own.kill()
      // kafkajs gives up on the dead broker and restarts the consumer (a new ConsumerGroup).
      await waitFor("the consumer to crash and be restarted", () => crashes.includes(true), 60_000)
      const joinsBefore = joins.length
      await own.startNode(1)
      await producer.send({ topic, acks: -1, messages: [{ key: "b", value: "after" }] })
      // Within the session timeout: waiting out the old member's session would take all of it.
      await waitFor("the record published after the restart", () => handled.has("after"), sessionTimeoutMs)

      // It rejoined after the crash, as the member it was...
      expect(joins.length).toBeGreaterThan(joinsBefore)
      expect(new Set(joins)).toEqual(new Set([member]))
      // ...and the group holds that one member, not a stranger beside a dead self.
      const check = kafka.admin()
      await check.connect()
      const { groups } = await check.describeGroups([groupId]).finally(() => check.disconnect())
      expect(groups[0]!.members.map((m) => m.memberId)).toEqual([member])
    } finally {
      await consumer.disconnect().catch(() => undefined)
      await producer.disconnect().catch(() => undefined)
      await own.remove()
    }
  }, 300_000)
})
