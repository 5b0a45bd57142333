/**
 * The delivery-attempt projection against the real broker and real Postgres (its own schema and
 * topic prefix): rows appear, duplicates and redeliveries add nothing, unreadable records are
 * skipped, and a restart resumes from the offsets stored with the rows.
 */
import { randomBytes } from "node:crypto"
import { Db } from "@orbit/db"
import { type DeliveryAttempted, encodeDeliveryAttempted, newEndpointId, topicsFor } from "@orbit/domain"
import { brokersFromEnv, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Layer, ManagedRuntime } from "effect"
import { Kafka, type KafkaMessage, logLevel } from "@orbit/kafka"
import { postgres } from "@orbit/db"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { applyAttemptBatch, ATTEMPTS_PROJECTION, AttemptProjection, type AttemptRow, attemptRow, pruneAttempts } from "../src/AttemptProjection.ts"
import { attempted } from "./attempted.ts"

const BROKERS = brokersFromEnv().join(",")
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

/** Attempt events as the records of one partition, from offset 0, keyed by their endpoint. */
const asMessages = (events: ReadonlyArray<DeliveryAttempted>): Array<KafkaMessage> =>
  events.map((e, i) => ({
    key: Buffer.from(e.endpoint_id),
    value: Buffer.from(encodeDeliveryAttempted(e)),
    offset: String(i),
    timestamp: String(Date.now()),
    attributes: 0,
    headers: {}
  }))

describe("AttemptProjection (real broker, real Postgres)", () => {
  const id = `tproj${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const prefix = `${id}_`
  const topic = topicsFor(prefix).attempts.name
  const kafka = new Kafka({ clientId: "test-attempt-projection", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined, connection: { search_path: id } })

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

  const start = async () => {
    Object.assign(process.env, { KAFKA_BROKERS: BROKERS, ORBIT_TOPIC_PREFIX: prefix, ORBIT_DB_SCHEMA: id, DATABASE_URL })
    const layer = AttemptProjection.layer.pipe(Layer.provide([Db.layer, TopicAdmin.layer]), Layer.provide(KafkaClient.layer))
    // A memo map of its own: a restart builds every layer afresh.
    const runtime = ManagedRuntime.make(layer, { memoMap: Layer.makeMemoMapUnsafe() })
    await runtime.context()
    return runtime
  }

  const produce = (values: Array<string>, key: string) =>
    retrying(() => producer.send({ topic, acks: -1, messages: values.map((value) => ({ key, value })) }))

  const rows = () => sql<Array<{ id: string; attempt: number }>>`SELECT id, attempt FROM delivery_attempts ORDER BY attempt`
  const appliedOffsets = async () =>
    (await sql<Array<{ next_offset: string }>>`SELECT next_offset FROM projection_offsets WHERE projection = ${ATTEMPTS_PROJECTION}`)
      .reduce((n, r) => n + Number(r.next_offset), 0)

  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  beforeAll(async () => {
    await retrying(() => admin.connect())
    await retrying(() => admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 3 }] }))
    await retrying(() => producer.connect())
  })

  afterAll(async () => {
    await producer.disconnect()
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
    await admin.deleteGroups([`${prefix}orbit-projection-attempts.${id}`]).catch(() => undefined)
    await admin.disconnect()
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${id}" CASCADE`).catch(() => undefined)
    await sql.end()
  })

  it("projects attempts once each, skips unreadable records, and resumes after a restart", async () => {
    const endpoint = newEndpointId()
    const a1 = attempted(endpoint, { attempt: 1 })
    const a2 = attempted(endpoint, { attempt: 2, delivery_id: a1.delivery_id })
    const a3 = attempted(endpoint, { attempt: 3, delivery_id: a1.delivery_id, outcome: "succeeded", http_status: 200, error_class: null, error_message: null, next_attempt_at: null })
    // One key: one partition, in order. A republished a1 (same event id) must not add a row.
    await produce([
      encodeDeliveryAttempted(a1),
      "{not json",
      encodeDeliveryAttempted(a2),
      encodeDeliveryAttempted(attempted(endpoint, { occurred_at: "not a time" })),
      encodeDeliveryAttempted(a1)
    ], endpoint)

    let runtime = await start()
    await waitFor("5 records applied", async () => (await appliedOffsets()) === 5)
    expect((await rows()).map((r) => r.id)).toEqual([a1.event_id, a2.event_id])
    const [stored] = await sql`SELECT * FROM delivery_attempts WHERE id = ${a1.event_id}`
    expect(stored).toMatchObject({
      delivery_id: a1.delivery_id,
      endpoint_id: endpoint,
      tenant_id: "tenant_p",
      mode: "live",
      source_event_id: a1.source_event_id,
      source_event_type: "message.delivered",
      attempt: 1,
      outcome: "failed",
      http_status: 503,
      duration_ms: 12,
      error_class: "http_status",
      error_message: "HTTP 503",
      dead_lettered: false
    })
    expect((stored!.occurred_at as Date).toISOString()).toBe(a1.occurred_at)
    await runtime.dispose()

    // Written while the projection is down: picked up from the stored offsets on restart.
    await produce([encodeDeliveryAttempted(a3)], endpoint)
    // A row older than the topic's retention: the restarted projection prunes it.
    await sql`UPDATE delivery_attempts SET occurred_at = now() - interval '31 days' WHERE id = ${a2.event_id}`
    runtime = await start()
    await waitFor("the 6th record", async () => (await appliedOffsets()) === 6)
    await waitFor("the old attempt pruned", async () => !(await rows()).some((r) => r.id === a2.event_id))
    expect((await rows()).map((r) => r.id)).toEqual([a1.event_id, a3.event_id])
    await runtime.dispose()
  })

  it("rebuilds from offset 0 when its offsets describe another Kafka log (other cluster, or beyond the log's end)", async () => {
    const before = (await rows()).map((r) => r.id)
    const applied = await appliedOffsets()
    expect(applied).toBeGreaterThan(0) // left by the previous test
    const stray = attempted(newEndpointId())
    const strayRow = attemptRow(stray)!
    const insertStray = () => sql`INSERT INTO delivery_attempts ${sql([strayRow as AttemptRow])}`

    // The recorded cluster is another one: what the table holds came from that cluster's log.
    await insertStray()
    await sql`UPDATE projection_logs SET cluster_id = 'another-cluster' WHERE projection = ${ATTEMPTS_PROJECTION}`
    let runtime = await start()
    await waitFor("the stray row gone", async () => !(await rows()).some((r) => r.id === stray.event_id))
    await waitFor("the log applied again from offset 0", async () => (await appliedOffsets()) === applied)
    // What the log holds, again: every row from before (and the row the previous test pruned by
    // age in the table, which its record in the log brings back), the stray one gone.
    const rebuilt = (await rows()).map((r) => r.id)
    expect(rebuilt).toEqual(expect.arrayContaining(before))
    expect(rebuilt).not.toContain(stray.event_id)
    const [log] = await sql`SELECT cluster_id FROM projection_logs WHERE projection = ${ATTEMPTS_PROJECTION}`
    expect(log!.cluster_id).not.toBe("another-cluster")
    await runtime.dispose()

    // Same cluster, but a stored offset past the end of the log (the topic was recreated).
    await insertStray()
    await sql`UPDATE projection_offsets SET next_offset = next_offset + 1000 WHERE projection = ${ATTEMPTS_PROJECTION} AND next_offset > 0`
    runtime = await start()
    await waitFor("the stray row gone again", async () => !(await rows()).some((r) => r.id === stray.event_id))
    await waitFor("the offsets back at the log's end", async () => (await appliedOffsets()) === applied)
    expect((await rows()).map((r) => r.id)).toEqual(rebuilt)
    await runtime.dispose()
  }, 90_000)

  it("resumes from the offsets stored in Postgres when the group's committed offsets are past them (Postgres restored from an older backup)", async () => {
    const before = (await rows()).map((r) => r.id)
    const applied = await appliedOffsets()
    expect(before.length).toBeGreaterThan(0) // left by the previous tests
    // The database as a backup taken before anything was applied would leave it; the group's
    // committed offsets stay at the log's end.
    await sql`DELETE FROM delivery_attempts`
    await sql`UPDATE projection_offsets SET next_offset = 0 WHERE projection = ${ATTEMPTS_PROJECTION}`
    const runtime = await start()
    await waitFor("the log applied again from the stored offsets", async () => (await appliedOffsets()) === applied)
    expect((await rows()).map((r) => r.id)).toEqual(expect.arrayContaining(before))
    await runtime.dispose()
  }, 90_000)

  it("applying a batch again adds nothing: below the stored offset it is skipped, and inserts are idempotent", async () => {
    const endpoint = newEndpointId()
    const messages = asMessages([attempted(endpoint), attempted(endpoint)])
    const apply = () =>
      sql.begin((tx) =>
        applyAttemptBatch({ tx, projection: "test_reapply", topic: "t", partition: 0, messages, onPoison: () => undefined })
      )
    expect(await apply()).toEqual({ next: 2n, inserted: 2 })
    expect(await apply()).toEqual({ next: undefined, inserted: 0 })
    await sql`DELETE FROM projection_offsets WHERE projection = 'test_reapply'`
    expect(await apply()).toEqual({ next: 2n, inserted: 0 })
  })

  it("prunes attempts older than the cut-off, in batches, and keeps the rest", async () => {
    const endpoint = newEndpointId()
    const day = 24 * 60 * 60 * 1000
    const events = [
      ...Array.from({ length: 25 }, () => attempted(endpoint, { occurred_at: new Date(Date.now() - 40 * day).toISOString() })),
      ...Array.from({ length: 3 }, () => attempted(endpoint, { occurred_at: new Date(Date.now() - 29 * day).toISOString() }))
    ]
    const messages = asMessages(events)
    await sql.begin((tx) => applyAttemptBatch({ tx, projection: "test_prune", topic: "t", partition: 0, messages, onPoison: () => undefined }))
    const others = (await sql`SELECT count(*)::int AS n FROM delivery_attempts WHERE endpoint_id <> ${endpoint}`)[0]!.n
    // Batches of 10: three statements, the last one short.
    expect(await pruneAttempts(sql, new Date(Date.now() - 30 * day), 10)).toBe(25)
    const kept = await sql<Array<{ occurred_at: Date }>>`SELECT occurred_at FROM delivery_attempts WHERE endpoint_id = ${endpoint}`
    expect(kept.map((r) => r.occurred_at.toISOString()).sort()).toEqual(events.slice(25).map((e) => e.occurred_at).sort())
    expect((await sql`SELECT count(*)::int AS n FROM delivery_attempts WHERE endpoint_id <> ${endpoint}`)[0]!.n).toBe(others)
    expect(await pruneAttempts(sql, new Date(Date.now() - 30 * day), 10)).toBe(0)
  })
})
