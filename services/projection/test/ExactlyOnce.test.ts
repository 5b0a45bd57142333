/**
 * The endpoint projection applies every record exactly once, against the real broker and real
 * Postgres (a schema and topic prefix of its own), through the projection's own layers. Faults are
 * injected with triggers, so the projection's transaction fails once at a chosen point and Kafka
 * redelivers the batch:
 *
 * - between the row writes and the offset write: a record applied twice would write the same
 *   row version twice, and a trigger logs every row write into `endpoint_writes`, in the same
 *   transaction (a rolled-back write leaves no trace there, a committed one does);
 * - at COMMIT (a deferred constraint trigger): a record skipped would leave its effect missing
 *   from the table once a later record (a sentinel) of the same partition has been applied.
 */
import { randomBytes } from "node:crypto"
import { Db, migrate } from "@orbit/db"
import { encodeEndpointEvent, type Endpoint, type EndpointEvent, evolve, newEndpointId, newEventId, topicsFor } from "@orbit/domain"
import { brokersFromEnv, KafkaClient, TopicAdmin } from "@orbit/kafka"
import { Effect, Layer, ManagedRuntime } from "effect"
import { Kafka, logLevel } from "@orbit/kafka"
import { postgres } from "@orbit/db"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { EndpointProjection, PROJECTION } from "../src/EndpointProjection.ts"

const BROKERS = brokersFromEnv().join(",")
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

describe("EndpointProjection exactly once (real broker, real Postgres)", () => {
  const id = `texact${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const prefix = `${id}_`
  const { name: topic, partitions } = topicsFor(prefix).endpointEvents
  const kafka = new Kafka({ clientId: "test-exactly-once", brokers: BROKERS.split(","), logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined, connection: { search_path: id } })
  let runtime: ManagedRuntime.ManagedRuntime<EndpointProjection, unknown> | undefined

  /** Every event the test published, to fold into the table the log describes. */
  const published: Array<EndpointEvent> = []
  let clock = Date.now()
  const tick = () => new Date(++clock).toISOString()

  const registered = (endpointId: string): EndpointEvent => ({
    _tag: "EndpointRegistered",
    schema_version: 1,
    event_id: newEventId(),
    occurred_at: tick(),
    endpoint_id: endpointId,
    tenant_id: "tenant_x",
    mode: "live",
    url: "https://hooks.example.com/v1",
    events: ["message.delivered"],
    description: null,
    active: true,
    timeout_seconds: 30,
    retry_policy: { strategy: "fixed", max_attempts: 3, delay_seconds: 10 },
    secret_box: "box"
  })
  const updated = (endpointId: string, url: string): EndpointEvent => ({
    _tag: "EndpointUpdated",
    schema_version: 1,
    event_id: newEventId(),
    occurred_at: tick(),
    endpoint_id: endpointId,
    tenant_id: "tenant_x",
    mode: "live",
    url,
    events: ["message.delivered"],
    description: "updated",
    active: true,
    timeout_seconds: 30,
    retry_policy: { strategy: "fixed", max_attempts: 3, delay_seconds: 10 }
  })
  const deleted = (endpointId: string): EndpointEvent => ({
    _tag: "EndpointDeleted",
    schema_version: 1,
    event_id: newEventId(),
    occurred_at: tick(),
    endpoint_id: endpointId,
    tenant_id: "tenant_x",
    mode: "live"
  })

  const publish = async (events: Array<EndpointEvent>, partition?: number) => {
    published.push(...events)
    await producer.send({
      topic,
      acks: -1,
      messages: events.map((e) => ({ key: e.endpoint_id, value: encodeEndpointEvent(e), ...(partition === undefined ? {} : { partition }) }))
    })
  }

  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** The offsets stored with the rows reach the topic's end offsets, partition by partition. */
  const caughtUp = async () => {
    const ends = await admin.fetchTopicOffsets(topic)
    const stored = new Map(
      (await sql<Array<{ partition: number; next_offset: string }>>`
        SELECT partition, next_offset FROM projection_offsets WHERE projection = ${PROJECTION} AND topic = ${topic}`)
        .map((r) => [r.partition, BigInt(r.next_offset)])
    )
    return ends.every((e) => (stored.get(e.partition) ?? 0n) >= BigInt(e.high))
  }

  /** The table the published events describe, folded with the domain's `evolve`. */
  const expectedTable = () => {
    const state = new Map<string, Endpoint>()
    for (const event of published) {
      const next = evolve(state.get(event.endpoint_id), event)
      if (next === undefined) state.delete(event.endpoint_id)
      else state.set(event.endpoint_id, next)
    }
    return [...state.values()].map((e) => ({ id: e.id, url: e.url, description: e.description, updated_at: e.updated_at })).sort(byId)
  }
  const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  const table = async () =>
    (await sql<Array<{ id: string; url: string; description: string | null; updated_at: Date }>>`
      SELECT id, url, description, updated_at FROM endpoints`)
      .map((r) => ({ ...r, updated_at: r.updated_at.toISOString() }))
      .sort(byId)

  /** true once the fault sequence handed out its first value, i.e. the fault fired. */
  const fired = async (sequence: string) =>
    (await sql.unsafe<Array<{ is_called: boolean }>>(`SELECT is_called FROM "${sequence}"`))[0]!.is_called

  beforeAll(async () => {
    await Effect.runPromise(migrate(sql, id))
    // Every row write of the read model, logged in the writing transaction.
    await sql.unsafe(`
      CREATE TABLE endpoint_writes (n bigserial PRIMARY KEY, op text NOT NULL, id text NOT NULL, updated_at timestamptz);
      CREATE FUNCTION log_endpoint_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' THEN
          INSERT INTO endpoint_writes (op, id) VALUES (TG_OP, OLD.id);
        ELSE
          INSERT INTO endpoint_writes (op, id, updated_at) VALUES (TG_OP, NEW.id, NEW.updated_at);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER log_endpoint_write AFTER INSERT OR UPDATE OR DELETE ON endpoints
        FOR EACH ROW EXECUTE FUNCTION log_endpoint_write();`)
    await admin.connect()
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions }] })
    await producer.connect()
    Object.assign(process.env, { KAFKA_BROKERS: BROKERS, ORBIT_TOPIC_PREFIX: prefix, ORBIT_DB_SCHEMA: id, DATABASE_URL })
    const layer = EndpointProjection.layer.pipe(Layer.provide([Db.layer, TopicAdmin.layer]), Layer.provide(KafkaClient.layer))
    runtime = ManagedRuntime.make(layer, { memoMap: Layer.makeMemoMapUnsafe() })
    await runtime.context()
  }, 60_000)

  afterAll(async () => {
    await runtime?.dispose()
    await producer.disconnect()
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
    await admin.deleteGroups([`${prefix}orbit-projection.${id}`]).catch(() => undefined)
    await admin.disconnect()
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${id}" CASCADE`).catch(() => undefined)
    await sql.end()
  })

  const endpoints = Array.from({ length: 30 }, () => newEndpointId())

  it("applies a record once when its transaction fails between the row writes and the offset write", async () => {
    await publish(endpoints.map(registered))
    await waitFor("the registrations applied", caughtUp)

    // The next offset write fails, once: its transaction has already written its rows.
    await sql.unsafe(`
      CREATE SEQUENCE fault_offset;
      CREATE FUNCTION fail_offset_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('fault_offset') = 1 THEN RAISE EXCEPTION 'injected fault: the offset write fails once'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_offset_once BEFORE INSERT OR UPDATE ON projection_offsets
        FOR EACH ROW WHEN (NEW.projection = '${PROJECTION}') EXECUTE FUNCTION fail_offset_once();`)
    // Each update is its endpoint's last event: applied again, it writes the same row version again.
    await publish(endpoints.map((e) => updated(e, "https://hooks.example.com/v2")))
    await waitFor("the updates applied", caughtUp)
    expect(await fired("fault_offset")).toBe(true)

    const twice = await sql`
      SELECT op, id, updated_at, count(*)::int AS writes FROM endpoint_writes
      GROUP BY op, id, updated_at HAVING count(*) > 1`
    expect(twice).toEqual([])
    // One registration and one update per endpoint, each written once.
    const [writes] = await sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM endpoint_writes`
    expect(writes!.n).toBe(2 * endpoints.length)
    expect(await table()).toEqual(expectedTable())
  }, 90_000)

  it("applies a record whose transaction fails at COMMIT when it is redelivered, never skips it", async () => {
    // The next transaction that writes a row fails at COMMIT, once.
    await sql.unsafe(`
      CREATE SEQUENCE fault_commit;
      CREATE FUNCTION fail_commit_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('fault_commit') = 1 THEN RAISE EXCEPTION 'injected fault: COMMIT fails once'; END IF;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER fail_commit_once AFTER INSERT OR UPDATE OR DELETE ON endpoints
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit_once();`)
    const fresh = Array.from({ length: 10 }, () => newEndpointId())
    await publish([
      ...endpoints.map((e, i) => (i % 2 === 0 ? updated(e, "https://hooks.example.com/v3") : deleted(e))),
      ...fresh.map(registered)
    ])
    await waitFor("the fault to fire", () => fired("fault_commit"))

    // A later record on every partition: once each is applied, every record before it has had
    // its turn (applied, or skipped if the projection skipped it).
    const sentinels = Array.from({ length: partitions }, () => newEndpointId())
    for (const [partition, sentinel] of sentinels.entries()) await publish([registered(sentinel)], partition)
    await waitFor("the sentinels applied", async () => {
      const [applied] = await sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM endpoints WHERE id = ANY(${sentinels})`
      return applied!.n === sentinels.length
    })
    expect(await table()).toEqual(expectedTable())
    expect(await caughtUp()).toBe(true)
  }, 90_000)
})
