/**
 * applyBatch of the endpoint projection against the real Postgres (a schema of its own): a batch
 * and its offset are applied together; a record that cannot be read and an event whose data
 * Postgres refuses are each skipped alone; a batch applied again changes nothing.
 */
import { randomBytes } from "node:crypto"
import { migrate, transactCarefullyOnDataError } from "@orbit/db"
import { encodeEndpointEvent, type EndpointEvent, newEndpointId, newEventId } from "@orbit/domain"
import { Effect } from "effect"
import type { KafkaMessage } from "@orbit/kafka"
import { postgres } from "@orbit/db"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { applyBatch } from "../src/EndpointProjection.ts"
import { OFFSETS_CHANNEL } from "../src/OffsetStore.ts"

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const registered = (endpointId: string, over: Partial<EndpointEvent> = {}): EndpointEvent => ({
  _tag: "EndpointRegistered",
  schema_version: 1,
  event_id: newEventId(),
  occurred_at: new Date().toISOString(),
  endpoint_id: endpointId,
  tenant_id: "tenant_p",
  mode: "live",
  url: "https://hooks.example.com/h",
  events: ["message.delivered"],
  description: null,
  active: true,
  timeout_seconds: 30,
  retry_policy: { strategy: "fixed", max_attempts: 3, delay_seconds: 10 },
  secret_box: "box",
  ...over
} as EndpointEvent)

const messages = (values: Array<string>, firstOffset = 0): Array<KafkaMessage> =>
  values.map((value, i) => ({
    key: null,
    value: Buffer.from(value),
    offset: String(firstOffset + i),
    timestamp: String(Date.now()),
    attributes: 0,
    headers: {}
  }))

describe("EndpointProjection.applyBatch (real Postgres)", () => {
  const schema = `tendp${Date.now().toString(36)}${randomBytes(3).toString("hex")}`
  const sql = postgres(DATABASE_URL, { max: 2, onnotice: () => undefined, connection: { search_path: schema } })
  const topic = "endpoint-events"

  // As the live projection runs it: all at once, then carefully if Postgres refuses some data.
  const apply = (batch: Array<KafkaMessage>, poison: Array<string>) =>
    transactCarefullyOnDataError(sql, (tx, careful) => {
      poison.length = 0
      return applyBatch({
        tx,
        projection: "endpoints",
        table: "endpoints",
        topic,
        partition: 0,
        messages: batch,
        onPoison: (offset) => poison.push(offset),
        careful,
        notify: true
      })
    })

  beforeAll(async () => {
    await Effect.runPromise(migrate(sql, schema))
  })

  afterAll(async () => {
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await sql.end()
  })

  it("applies readable events with their offset, skips the unreadable and the refused, and notifies once", async () => {
    const a = newEndpointId()
    const b = newEndpointId()
    const c = newEndpointId()
    const notified: Array<string> = []
    const listener = await sql.listen(OFFSETS_CHANNEL, (payload) => notified.push(payload))

    const poison: Array<string> = []
    const batch = messages([
      encodeEndpointEvent(registered(a)),
      "{not json",
      // Decodes, but Postgres refuses a NUL in text (SQLSTATE 22P05): only this event is skipped.
      encodeEndpointEvent(registered(b, { description: "a\u0000b" })),
      encodeEndpointEvent({ ...registered(a), _tag: "EndpointUpdated", description: "v2" } as EndpointEvent),
      encodeEndpointEvent(registered(c))
    ])
    expect(await apply(batch, poison)).toBe(5n)
    expect(poison).toEqual(["1", "2"])
    const rows = await sql<Array<{ id: string; description: string | null }>>`SELECT id, description FROM endpoints ORDER BY id`
    expect(rows).toEqual([{ id: a, description: "v2" }, { id: c, description: null }].sort((x, y) => (x.id < y.id ? -1 : 1)))
    const [offset] = await sql`SELECT next_offset FROM projection_offsets WHERE projection = 'endpoints' AND topic = ${topic}`
    expect(offset!.next_offset).toBe("5")

    // The same batch again (Kafka redelivers after a crash): nothing changes, nothing is announced.
    const again: Array<string> = []
    expect(await apply(batch, again)).toBeUndefined()
    expect(again).toEqual([])
    expect(await sql`SELECT id, description FROM endpoints ORDER BY id`).toEqual(rows)

    // A batch that overlaps the stored offset applies only its new records.
    const d = newEndpointId()
    expect(await apply([...batch.slice(3), ...messages([encodeEndpointEvent(registered(d))], 5)], [])).toBe(6n)
    expect((await sql`SELECT id FROM endpoints`).map((r) => r.id).sort()).toEqual([a, c, d].sort())
    const [updated] = await sql`SELECT description FROM endpoints WHERE id = ${a}`
    expect(updated!.description).toBe("v2")

    for (let i = 0; i < 50 && notified.length < 2; i++) await new Promise((r) => setTimeout(r, 20))
    expect(notified).toEqual([`${topic}|0|5`, `${topic}|0|6`])
    await listener.unlisten()
  })
})
