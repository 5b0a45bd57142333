import { execFileSync, spawnSync } from "node:child_process"
import path from "node:path"
import { SecretBox } from "@orbit/crypto"
import { encodeEndpointEvent, type EndpointEvent, newEndpointId, newEventId, topicsFor } from "@orbit/domain"
import { Effect } from "effect"
import "@orbit/kafka/KafkajsPatch" // before kafkajs loads, as in the services (it replaces kafkajs modules)
import { Kafka, logLevel } from "kafkajs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { brokers, startKafka, stopKafka } from "../../infra/kafka.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")
const kafka = new Kafka({ clientId: "durability-test", brokers: brokers(), logLevel: logLevel.NOTHING })

let platform: Platform
beforeAll(async () => {
  platform = await startPlatform()
})
afterAll(() => platform?.close())

const valid = { url: "https://hooks.example.com/orbit", events: ["message.delivered"] }

/** Every record of a topic, read from offset 0 up to the end offsets measured now. */
const readAll = async (topic: string) => {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
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

const snapshot = (p: Platform) =>
  p.sql`SELECT * FROM endpoints ORDER BY id`.then((rows) => JSON.stringify(rows))

const runCli = (p: Platform, ...args: Array<string>) =>
  spawnSync(process.execPath, [path.join(ROOT, "packages/cli/src/main.ts"), ...args], { env: p.env, encoding: "utf8" })

describe("secrets at rest", () => {
  it("never puts a signing secret in cleartext into Kafka, Postgres or the logs", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const chosen = "chosen-secret-d2f1c0aa-7b0e-4c4e-9b61"
    const created = await platform.api("POST", "/api/v1/webhooks", {
      key,
      body: { ...valid, secret: chosen },
      headers: { "idempotency-key": "secret-check" }
    })
    const generated = await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
    expect(created.status).toBe(201)
    expect(generated.status).toBe(201)
    const secrets = [chosen, generated.json.data.signing_secret as string]
    // The generated secret's random part alone must not appear either (e.g. without its prefix).
    secrets.push(secrets[1]!.slice("whsec_".length))

    const records = await readAll(topicsFor(platform.topicPrefix).endpointEvents.name)
    expect(records.length).toBeGreaterThanOrEqual(2)
    const dump = execFileSync("pg_dump", ["--data-only", `--schema=${platform.id}`, platform.env.DATABASE_URL!], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024
    })
    expect(dump).toContain(created.json.data.id)
    const logs = [...platform.logs.values()].flat().join("\n")
    for (const secret of secrets) {
      for (const record of records) expect(record).not.toContain(secret)
      expect(dump).not.toContain(secret)
      expect(logs).not.toContain(secret)
    }
    // ...yet the stored box decrypts to the secret the caller was given.
    const [row] = await platform.sql<Array<{ secret_box: string }>>`SELECT secret_box FROM endpoints WHERE id = ${created.json.data.id}`
    const plain = await Effect.runPromise(
      Effect.gen(function*() {
        return yield* (yield* SecretBox).decrypt(row!.secret_box)
      }).pipe(
        Effect.provide(SecretBox.layerFromKeyRing(platform.env.ORBIT_SECRET_KEYS!))
      )
    )
    expect(plain).toBe(chosen)
    // A repeat with the same Idempotency-Key still returns the cleartext secret once more.
    const repeat = await platform.api("POST", "/api/v1/webhooks", {
      key,
      body: { ...valid, secret: chosen },
      headers: { "idempotency-key": "secret-check" }
    })
    expect(repeat.json.data.signing_secret).toBe(chosen)
  })
})

describe("projection crash and replay", () => {
  it("kill -9 of the projection mid-stream, then restart: every event applied exactly once", async () => {
    const tenant = uniqueTenant()
    const box = await Effect.runPromise(
      Effect.gen(function*() {
        return yield* SecretBox
      }).pipe(Effect.provide(SecretBox.layerFromKeyRing(platform.env.ORBIT_SECRET_KEYS!)))
    )
    const secretBox = await Effect.runPromise(box.encrypt("whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0"))
    const now = Date.now()
    const events: Array<EndpointEvent> = []
    const expected = new Map<string, string>()
    const N = 1500
    for (let i = 0; i < N; i++) {
      const endpointId = newEndpointId()
      const base = {
        schema_version: 1 as const,
        endpoint_id: endpointId,
        tenant_id: tenant,
        mode: "live" as const,
        url: `https://hooks.example.com/${i}`,
        events: ["message.delivered" as const],
        active: true,
        timeout_seconds: 30,
        retry_policy: { strategy: "fixed" as const, max_attempts: 3, delay_seconds: 10 }
      }
      events.push({
        _tag: "EndpointRegistered",
        ...base,
        event_id: newEventId(),
        occurred_at: new Date(now + i).toISOString(),
        description: null,
        secret_box: secretBox
      })
      // Every third endpoint is updated, every fifth deleted: the final state depends on all events.
      if (i % 3 === 0) {
        events.push({ _tag: "EndpointUpdated", ...base, event_id: newEventId(), occurred_at: new Date(now + N + i).toISOString(), description: `v2-${i}` })
      }
      if (i % 5 === 0) {
        events.push({ _tag: "EndpointDeleted", schema_version: 1, endpoint_id: endpointId, tenant_id: tenant, mode: "live", event_id: newEventId(), occurred_at: new Date(now + 2 * N + i).toISOString() })
      } else {
        expected.set(endpointId, i % 3 === 0 ? `v2-${i}` : "")
      }
    }

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const topic = topicsFor(platform.topicPrefix).endpointEvents.name
    const sending = (async () => {
      for (let i = 0; i < events.length; i += 100) {
        await producer.send({
          topic,
          acks: -1,
          messages: events.slice(i, i + 100).map((e) => ({ key: e.endpoint_id, value: encodeEndpointEvent(e) }))
        })
      }
    })()
    await platform.waitFor("some events projected", async () => {
      const [{ n }] = await platform.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM endpoints WHERE tenant_id = ${tenant}`
      return n > 50
    })
    await platform.stop("projection", "SIGKILL")
    await sending
    await producer.disconnect()
    const [{ n: partial }] = await platform.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM endpoints WHERE tenant_id = ${tenant}`
    expect(partial).toBeLessThan(expected.size)

    platform.start("projection")
    // Caught up = the offsets stored with the rows reach the topic's end (readiness is probed
    // only once a second, so it can still show the state from before the kill).
    const endOffsetsTotal = async () => {
      const admin = kafka.admin()
      await admin.connect()
      const o = await admin.fetchTopicOffsets(topic)
      await admin.disconnect()
      return o.reduce((s, p) => s + BigInt(p.high), 0n)
    }
    const appliedTotal = async () => {
      const [{ total }] = await platform.sql<Array<{ total: string | null }>>`
        SELECT sum(next_offset)::text AS total FROM projection_offsets WHERE projection = 'endpoints' AND topic = ${topic}`
      return BigInt(total ?? "0")
    }
    const target = await endOffsetsTotal()
    await platform.waitFor("projection caught up", async () => (await appliedTotal()) >= target, 90_000)
    const rows = await platform.sql<Array<{ id: string; description: string | null }>>`
      SELECT id, description FROM endpoints WHERE tenant_id = ${tenant}`
    expect(rows.length).toBe(expected.size)
    for (const row of rows) expect(row.description ?? "").toBe(expected.get(row.id))
    expect(await appliedTotal()).toBe(await endOffsetsTotal())
  })

  it("replay endpoints rebuilds an identical table while the API keeps answering", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    for (let i = 0; i < 5; i++) await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
    const before = await snapshot(platform)

    let reading = true
    const statuses: Array<number> = []
    const reader = (async () => {
      while (reading) {
        statuses.push((await platform.api("GET", "/api/v1/webhooks", { key })).status)
        await new Promise((r) => setTimeout(r, 10))
      }
    })()
    const replay = runCli(platform, "replay", "endpoints")
    reading = false
    await reader
    expect(replay.status, replay.stderr).toBe(0)
    expect(await snapshot(platform)).toBe(before)
    expect(statuses.length).toBeGreaterThan(0)
    expect(statuses.every((s) => s === 200)).toBe(true)

    // The live projection keeps working on the swapped-in table, and a second rebuild is identical.
    const after = await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
    expect(after.status).toBe(201)
    expect((await platform.api("GET", `/api/v1/webhooks/${after.json.data.id}`, { key })).status).toBe(200)
    const withNew = await snapshot(platform)
    expect(runCli(platform, "replay", "endpoints").status).toBe(0)
    expect(await snapshot(platform)).toBe(withNew)
  })
})

describe("broker outage", () => {
  it.skipIf(process.env.KAFKA_BROKERS !== undefined)(
    "answers 503 while Kafka is down, changes nothing, and recovers by itself when it is back",
    async () => {
      const { key } = await platform.createKey(uniqueTenant())
      await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
      await stopKafka()
      try {
        const res = await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
        expect(res.status).toBe(503)
        expect(res.json.error.code).toBe("SERVICE_UNAVAILABLE")
        expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
        // Reads are served from Postgres and keep working.
        const list = await platform.api("GET", "/api/v1/webhooks", { key })
        expect(list.status).toBe(200)
        expect(list.json.data).toHaveLength(1)
        expect((await platform.api("GET", "/readyz")).status).toBe(503)
      } finally {
        await startKafka()
      }
      // Recovery needs no restart: the producer reconnects, and the projection's consumer is
      // rebuilt once the group coordinator has loaded. Every 201 is listed (read-your-writes
      // may lag while the projection recovers, so wait for the list to show them all).
      const created: Array<string> = []
      await platform.waitFor("a POST to succeed again", async () => {
        const res = await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
        if (res.status === 201) created.push(res.json.data.id)
        return res.status === 201
      }, 90_000)
      await platform.waitFor("every created endpoint to be listed", async () => {
        const list = await platform.api("GET", "/api/v1/webhooks", { key })
        return list.json.data.length === 1 + created.length
      }, 90_000)
      const fresh = await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
      expect(fresh.status).toBe(201)
      const list = await platform.api("GET", "/api/v1/webhooks", { key })
      expect(list.json.data[0].id).toBe(fresh.json.data.id)
      expect(list.json.data).toHaveLength(2 + created.length)
    }
  )
})
