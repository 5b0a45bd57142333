/**
 * A three-broker KRaft cluster of the test's own (`startOwnKafka(3)`: three JVMs on free ports).
 * An existing topic with fewer replicas than the factor is reported at start in one WARN naming
 * it and the command that fixes it. Then the three services on it, and kill -9 of one broker
 * under event and API load:
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
      await platform.waitFor("every acknowledged event delivered to every endpoint", async () =>
        published.every((id) => endpoints.every((e) => delivered(id, e.path))), 240_000)
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
