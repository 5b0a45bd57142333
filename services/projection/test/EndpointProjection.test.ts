/**
 * applyBatch of the endpoint projection against the real Postgres (a schema of its own): a batch
 * and its offset are applied together; a record that cannot be read and an event whose data
 * Postgres refuses are each skipped alone; a batch applied again changes nothing; a batch with many
 * new endpoints (written by COPY) gives the rows the upsert gives; with the projection's session
 * settings a batch's row lookup is planned afresh each time, never on a cached generic plan.
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
import { projectionSession } from "../src/ProjectionSession.ts"

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
  let carefulTries = 0
  const apply = (batch: Array<KafkaMessage>, poison: Array<string>, table = "endpoints") =>
    transactCarefullyOnDataError(sql, (tx, careful) => {
      if (careful) carefulTries++
      poison.length = 0
      return applyBatch({
        tx,
        projection: table,
        table,
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

  it("writes a batch of many new endpoints (by COPY) as the upsert writes them one by one, and skips a refused one alone", async () => {
    await sql`CREATE TABLE endpoints_copied (LIKE endpoints INCLUDING ALL)`
    await sql`CREATE TABLE endpoints_upserted (LIKE endpoints INCLUDING ALL)`
    // Every kind of column, and what COPY's text format must escape: tab, newline, carriage
    // return, backslash (also before N and a dot, COPY's null and end-of-data markers).
    const awkward = "tab\there\nnew line\r\\N \\ back\\slash \"quoted\" ünïcödé \\.\n\\."
    const ids = Array.from({ length: 600 }, () => newEndpointId())
    const events = ids.map((id, i) =>
      registered(id, {
        tenant_id: i % 2 === 0 ? "tenant_p" : awkward,
        description: i % 3 === 0 ? null : `${awkward} ${i}`,
        url: `https://hooks.example.com/h?q=${i}&t=a\tb`,
        events: i % 5 === 0 ? ["*"] : ["message.delivered", "message.failed"],
        headers: i % 4 === 0 ? {} : { "X-Awkward": `v\\${i}\t` },
        rate_limit_per_second: i % 7 === 0 ? 10 : null,
        retry_policy: { strategy: "custom", delays_seconds: [1, 2, i % 60 + 1] }
      } as Partial<EndpointEvent>)
    )
    // In the same batch: an endpoint registered and updated, another registered and deleted.
    events.push({ ...events[1]!, _tag: "EndpointUpdated", description: "updated", active: false } as EndpointEvent)
    events.push({ _tag: "EndpointDeleted", schema_version: 1, event_id: newEventId(), occurred_at: new Date().toISOString(), endpoint_id: ids[2]!, tenant_id: "tenant_p", mode: "live" } as EndpointEvent)
    // The next batch: as many new endpoints, one of them with a NUL Postgres refuses in text.
    const more = Array.from({ length: 600 }, (_, i) => registered(newEndpointId(), i === 300 ? { description: "a\u0000b" } : {}))
    const first = messages(events.map((e) => encodeEndpointEvent(e)))
    const second = messages(more.map((e) => encodeEndpointEvent(e)), first.length)

    const poison: Array<string> = []
    carefulTries = 0
    expect(await apply(first, poison, "endpoints_copied")).toBe(BigInt(first.length))
    expect(poison).toEqual([])
    // Taken whole: no row of it made Postgres refuse the COPY (an unescaped tab would have).
    expect(carefulTries).toBe(0)
    expect(await apply(second, poison, "endpoints_copied")).toBe(BigInt(first.length + second.length))
    expect(poison).toEqual([String(first.length + 300)])
    // The refused COPY sent the batch down the careful path, row by row.
    expect(carefulTries).toBe(1)
    // The same events one at a time: each batch has one new row at most, so each goes by upsert.
    for (const m of [...first, ...second]) await apply([m], [], "endpoints_upserted")
    const all = (table: string) => sql`SELECT * FROM ${sql(table)} ORDER BY id`
    const copied = await all("endpoints_copied")
    expect(copied.length).toBe(600 - 1 + 600 - 1)
    expect(copied).toEqual(await all("endpoints_upserted"))
    expect(copied.find((r) => r.id === ids[1])).toMatchObject({ description: "updated", active: false })
    expect(copied.find((r) => r.id === ids[5])).toMatchObject({ tenant_id: awkward, description: `${awkward} 5` })
  })

  it("plans the batch's row lookup for the table as it is each time, never on a cached generic plan", async () => {
    // One connection with the live projection's session: the prepared statements below are its own.
    await sql`CREATE TABLE endpoints_planned (LIKE endpoints INCLUDING ALL)`
    const projectionSql = postgres(DATABASE_URL, { max: 1, onnotice: () => undefined, connection: { search_path: schema, ...projectionSession } })
    try {
      // A small table with its statistics, then batches of one new endpoint, a thousand at once, and
      // one more: by the sixth execution a connection would settle on a generic plan (the sequential
      // scan that suits the small table) and keep it as the table grows.
      const batch = (offset: number, count: number) =>
        messages(Array.from({ length: count }, () => encodeEndpointEvent(registered(newEndpointId()))), offset)
      const applyOn = (b: Array<KafkaMessage>) =>
        transactCarefullyOnDataError(projectionSql, (tx, careful) =>
          applyBatch({ tx, projection: "planned", table: "endpoints_planned", topic, partition: 0, messages: b, onPoison: () => {}, careful, notify: false }))
      await applyOn(batch(0, 200))
      await sql`ANALYZE endpoints_planned`
      const batches = [...Array.from({ length: 7 }, (_, i) => batch(200 + i, 1)), batch(207, 1000), batch(1207, 1)]
      for (const b of batches) await applyOn(b)
      const [lookup] = await projectionSql<Array<{ generic_plans: string; custom_plans: string }>>`
        SELECT generic_plans, custom_plans FROM pg_prepared_statements
        WHERE statement LIKE '%endpoints_planned%' AND statement LIKE '%FOR UPDATE%' AND statement NOT LIKE '%pg_prepared_statements%'`
      expect(lookup).toBeDefined()
      expect(Number(lookup!.custom_plans)).toBe(batches.length + 1)
      expect(Number(lookup!.generic_plans)).toBe(0)
      expect((await sql`SELECT count(*)::int AS n FROM endpoints_planned`)[0]!.n).toBe(1208)
    } finally {
      await projectionSql.end()
    }
  })
})
