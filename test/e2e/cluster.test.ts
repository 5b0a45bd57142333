/**
 * A three-broker KRaft cluster of the test's own (`startOwnKafka(3)`: three JVMs on free ports).
 * An existing topic with fewer replicas than the factor is reported at start in one WARN naming
 * it and the command that fixes it. A producer's send whose partition leader stops answering
 * mid-send writes every record (the retry reaches the new leader even when that broker had already answered
 * for another partition of the send: `@orbit/kafka`'s `SendMessages.ts`). Then the three services
 * on it, and kill -9 of one broker under event and API load:
 * - the platform creates its topics with three replicas and `min.insync.replicas` 2 (the defaults
 *   for a cluster of three);
 * - no registration answered 201 is lost, no acknowledged event's delivery is lost;
 * - the API keeps answering throughout: every request gets an answer, reads are 200, writes 201
 *   or 503 (a write refused while the partition leaders move is never half done).
 */
import { randomBytes } from "node:crypto"
import { topicsFor } from "@orbit/domain"
import { Kafka, logLevel } from "@orbit/kafka"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type OwnKafka, startOwnKafka } from "../src/OwnKafka.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

/** Resolves once `check` holds; fails naming `what` after two minutes. */
const until = async (what: string, check: () => Promise<boolean>) => {
  const deadline = Date.now() + 120_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("a three-broker cluster", () => {
  let own: OwnKafka | undefined
  beforeAll(async () => {
    own = await startOwnKafka(3)
  }, 180_000)
  afterAll(async () => {
    await own?.remove()
  })

  it("an existing topic with fewer replicas is reported at start in one WARN naming it and the command that fixes it", async () => {
    let platform: Platform | undefined
    try {
      platform = await startPlatform({ brokers: own!.brokers, services: [] })
      const p = platform
      // A topic left from before the cluster grew: one replica.
      const lonely = topicsFor(p.topicPrefix).endpointEvents
      const kafka = new Kafka({ clientId: "cluster-test", brokers: own!.brokers, logLevel: logLevel.NOTHING })
      const admin = kafka.admin()
      await admin.connect()
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: lonely.name, numPartitions: lonely.partitions, replicationFactor: 1 }] })
      await admin.disconnect()
      p.start("projection")
      const warnings = () => (p.logs.get("projection") ?? []).filter((l) => l.includes("fewer than 3 replicas"))
      await p.eventually("the replication WARN", () => warnings().length > 0, 120_000)
      expect(warnings()).toHaveLength(1)
      const line = JSON.parse(warnings()[0]!) as { level: string; message: unknown }
      expect(line.level).toBe("WARN")
      const text = JSON.stringify(line.message)
      expect(text).toContain(lonely.name)
      expect(text).toContain("kafka-reassign-partitions.sh")
      // Only the topic that is short of replicas: the ones the service created have three.
      expect(text).not.toContain(topicsFor(p.topicPrefix).sourceEvents.name)
    } finally {
      await platform?.close()
    }
  }, 300_000)

  it("a send whose partition leader stops answering mid-send writes every record: the retry sends what is left to the new leader (kafkajs #1303)", async () => {
    // Requests time out after 2 s and the producer's metadata is refreshed at every retry, so the
    // send outlasts the controller moving the leadership away from the frozen node.
    const kafka = new Kafka({ clientId: "cluster-test", brokers: own!.brokers, logLevel: logLevel.NOTHING, requestTimeout: 2_000 })
    const admin = kafka.admin()
    await admin.connect()
    const topic = `produce-retry-${randomBytes(4).toString("hex")}`
    // Partition 0 is led by node 2; partition 1 by node 1, whose only other replica is node 2. Once
    // node 1 is fenced, node 2 leads both: the broker that answered the first try for partition 0
    // is the one partition 1's records must now go to.
    await admin.createTopics({
      waitForLeaders: false,
      topics: [{
        topic,
        replicaAssignment: [{ partition: 0, replicas: [2, 3] }, { partition: 1, replicas: [1, 2] }],
        configEntries: [{ name: "min.insync.replicas", value: "1" }]
      }]
    })
    // kafkajs' own wait for leaders gives up when the broker it asks does not know the topic yet.
    await until("the topic's leaders", async () => {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => undefined)
      const leaders = metadata?.topics[0]?.partitions.map((p) => [p.partitionId, p.leader]).sort()
      return JSON.stringify(leaders) === JSON.stringify([[0, 2], [1, 1]])
    })
    // The platform's producer settings (idempotent, one request in flight).
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      metadataMaxAge: 500,
      retry: { retries: 60, initialRetryTime: 100, maxRetryTime: 1_000 }
    })
    await producer.connect()
    const frozen = own!.pid(1)!
    // Node 1 follows partition 1 again: it has learnt that it leads nothing any more (until then it
    // would answer for partition 1 as the leader it was, with the offsets it had), and it is back
    // in the cluster for the next test.
    const untilRejoined = () =>
      until("node 1 following partition 1 again", async () => {
        const metadata = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => undefined)
        const p1 = metadata?.topics[0]?.partitions.find((p) => p.partitionId === 1)
        return p1?.leader === 2 && p1.isr.includes(1)
      })
    try {
      // The producer is connected to node 1 and its metadata names node 1 as partition 1's leader.
      await producer.send({ acks: -1, topic, messages: [{ partition: 0, value: "before" }, { partition: 1, value: "before" }] })
      // SIGSTOP, not kill -9: the connection stays open, so the send's request reaches node 1 and is
      // never answered while node 2 answers for partition 0 (a killed node refuses the connection
      // and no request of the send goes out until the leader has moved).
      process.kill(frozen, "SIGSTOP")
      const sent = await producer.send({ acks: -1, topic, messages: [{ partition: 0, value: "after" }, { partition: 1, value: "after" }] })
      expect(sent.map((r) => r.partition).sort()).toEqual([0, 1])
      process.kill(frozen, "SIGCONT")
      await untilRejoined()
      const ends = await admin.fetchTopicOffsets(topic)
      expect(ends.map((p) => [p.partition, p.high]).sort()).toEqual([[0, "2"], [1, "2"]])
    } finally {
      process.kill(frozen, "SIGCONT")
      await producer.disconnect()
      // The next test creates topics with three replicas.
      await untilRejoined()
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
      await admin.disconnect()
    }
  }, 300_000)

  it("loses a broker (kill -9) under event and API load: nothing registered or published is lost, the API keeps answering", async () => {
    let rig: DeliveryRig | undefined
    try {
      rig = await startDeliveryRig({}, { brokers: own!.brokers })
      const { platform, receiver } = rig
      const kafka = new Kafka({ clientId: "cluster-test", brokers: own!.brokers, logLevel: logLevel.NOTHING })

      // The topics have three replicas, two of which must have a write before it is acknowledged.
      const admin = kafka.admin()
      await admin.connect()
      const sourceTopic = `${platform.topicPrefix}orbit.events`
      await platform.waitFor("the platform's topics", async () => (await admin.listTopics()).includes(sourceTopic))
      const metadata = await admin.fetchTopicMetadata({ topics: [sourceTopic] })
      expect(metadata.topics[0]!.partitions.every((p) => p.replicas.length === 3)).toBe(true)
      const configs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: 2 /* TOPIC */, name: sourceTopic, configNames: ["min.insync.replicas"] }]
      })
      expect(configs.resources[0]!.configEntries[0]!.configValue).toBe("2")
      await admin.disconnect()

      const tenant = uniqueTenant()
      const { key } = await platform.createKey(tenant)
      const endpoints: Array<{ id: string; path: string }> = []
      for (let i = 0; i < 3; i++) {
        const path = `/cluster-${i}-${randomBytes(3).toString("hex")}`
        const created = await platform.client(key).webhooks.create({ url: receiver.url(path), events: ["message.delivered"] })
        endpoints.push({ id: created.data.id, path })
      }

      // Load: registrations, reads and events, until told to stop.
      const registered: Array<string> = []
      const writeStatuses = new Map<number, number>()
      const readStatuses = new Map<number, number>()
      const unanswered: Array<string> = []
      const published: Array<string> = []
      const count = (m: Map<number, number>, s: number) => m.set(s, (m.get(s) ?? 0) + 1)
      // A call that has not settled within a minute counts as not answered (and the load goes on).
      const within = <A>(what: string, call: Promise<A>): Promise<A | undefined> => {
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => {
            unanswered.push(`${what}: no answer within 60 s`)
            resolve(undefined)
          }, 60_000)
        })
        return Promise.race([call, late]).finally(() => clearTimeout(timer))
      }
      let running = true
      const writer = (async () => {
        while (running) {
          const res = await within("POST", platform.api("POST", "/api/v1/webhooks", {
            key,
            body: { url: "https://hooks.example.com/cluster", events: ["call.completed"] }
          })).catch((e: unknown) => void unanswered.push(String(e)))
          if (res === undefined) continue
          count(writeStatuses, res.status)
          if (res.status === 201) registered.push(res.json.data.id)
        }
      })()
      const reader = (async () => {
        while (running) {
          const res = await within("GET", platform.api("GET", "/api/v1/webhooks?limit=10", { key })).catch((e: unknown) => void unanswered.push(String(e)))
          if (res !== undefined) count(readStatuses, res.status)
          await new Promise((r) => setTimeout(r, 50))
        }
      })()
      const publisher = (async () => {
        while (running) {
          // An event counts once the cluster acknowledged it (acks=all); a send that failed while
          // leaders moved was never acknowledged, so nothing is owed for it.
          const sent = platform.publish(tenant)
          let timer: NodeJS.Timeout | undefined
          const late = new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), 60_000) })
          const id = await Promise.race([sent, late]).catch(() => undefined).finally(() => clearTimeout(timer))
          if (id !== undefined) published.push(id)
          else {
            // A send still pending after a minute may yet be acknowledged: it is owed once it is.
            void sent.then((acked) => published.push(acked), () => undefined)
            await new Promise((r) => setTimeout(r, 200)) // a refused send: try again shortly, not in a hot loop
          }
        }
      })()

      const delivered = (eventId: string, path: string) =>
        receiver.received.some((r) => r.path === path && r.status === 200 && r.body.includes(eventId))
      await platform.waitFor("load before the kill: 20 registrations and 50 events", async () =>
        registered.length >= 20 && published.length >= 50, 120_000)
      await own!.kill(1)
      const registeredAtKill = registered.length
      const publishedAtKill = published.length
      await platform.waitFor("load after the kill: 20 more registrations and 50 more events", async () =>
        registered.length >= registeredAtKill + 20 && published.length >= publishedAtKill + 50, 240_000)
      running = false
      await Promise.all([writer, reader, publisher])

      // No delivery lost: every acknowledged event reached every subscribed endpoint.
      const undelivered = () =>
        published.flatMap((id, i) => endpoints.filter((e) => !delivered(id, e.path)).map((e) => `event #${i} ${id} to ${e.path}`))
      await platform.waitFor("every acknowledged event delivered to every endpoint", async () => undelivered().length === 0, 240_000)
        .catch((e: Error) => {
          const missing = undelivered()
          throw new Error(`${missing.length} of ${published.length * endpoints.length} deliveries missing (${publishedAtKill} events published before the kill), e.g. ${missing.slice(0, 5).join(", ")}\n${e.message}`)
        })
      // No registration lost: every 201 is listed.
      const listed = new Set<string>()
      let cursor: string | null = null
      do {
        const page = await platform.api("GET", `/api/v1/webhooks?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key })
        expect(page.status).toBe(200)
        for (const e of page.json.data) listed.add(e.id)
        cursor = page.json.meta.pagination.cursor
      } while (cursor !== null)
      expect(registered.filter((id) => !listed.has(id))).toEqual([])
      // The API kept answering: every request got an answer; reads succeeded; writes were 201 or a clean 503.
      expect(unanswered).toEqual([])
      expect([...readStatuses.keys()]).toEqual([200])
      expect([...writeStatuses.keys()].filter((s) => s !== 201 && s !== 503)).toEqual([])
      console.log(
        `[cluster] killed 1 of 3 brokers: ${registered.length} registrations (${registeredAtKill} before the kill), ` +
          `${published.length} events (${publishedAtKill} before), writes ${JSON.stringify(Object.fromEntries(writeStatuses))}, ` +
          `reads ${JSON.stringify(Object.fromEntries(readStatuses))}`
      )
    } finally {
      await rig?.close()
    }
  }, 900_000) // three JVMs and the three services on a loaded two-core host: generous; the waits end as soon as their condition holds
})
