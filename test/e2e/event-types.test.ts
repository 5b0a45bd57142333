/**
 * The event catalog: `GET /api/v1/event-types` (any key of the tenant, public ones included) lists
 * every type with the JSON Schema of its data and an example; and with ORBIT_STRICT_EVENT_DATA a
 * source event whose data fails its type's schema goes to the invalid topic with the reason, while
 * a conforming one is delivered. Real processes, real Kafka, real Postgres, a real HTTPS receiver.
 */
import { EVENT_CATALOG, EVENT_TYPE_EXAMPLES, eventDataProblems, newEventId, topicsFor, WEBHOOK_EVENT_TYPES } from "@orbit/domain"
import { Kafka, logLevel, type KafkajsProducer as Producer } from "@orbit/kafka"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { brokers } from "../../infra/kafka.ts"
import type { HttpsReceiver } from "../src/HttpsReceiver.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { readRecords } from "../src/KafkaLog.ts"
import { type Platform, uniqueTenant } from "../src/Platform.ts"

const PATH = "/api/v1/event-types"

let receiver: HttpsReceiver
let platform: Platform
let producer: Producer
let rig: DeliveryRig

beforeAll(async () => {
  rig = await startDeliveryRig({ ORBIT_STRICT_EVENT_DATA: "true" })
  ;({ receiver, platform } = rig)
  producer = new Kafka({ clientId: "e2e-event-types", brokers: brokers(), logLevel: logLevel.NOTHING }).producer({ allowAutoTopicCreation: false })
  await producer.connect()
}, 120_000)

afterAll(async () => {
  await producer?.disconnect()
  await rig?.close()
})

describe("GET /api/v1/event-types", () => {
  it("lists every catalog type with its group, description, data schema and an example that conforms", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant, "live", "secret")
    const res = await platform.api("GET", PATH, { key })
    expect(res.status, res.text).toBe(200)
    expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
    expect(res.json.data.map((e: { type: string }) => e.type)).toEqual([...WEBHOOK_EVENT_TYPES])
    expect(res.json.data).toEqual(JSON.parse(JSON.stringify(EVENT_CATALOG)))
    const delivered = res.json.data.find((e: { type: string }) => e.type === "message.delivered")
    expect(delivered).toMatchObject({
      group: "message",
      description: expect.any(String),
      schema: { type: "object", required: expect.arrayContaining(["message_id", "status"]), properties: { status: { enum: ["delivered"] } } },
      example: EVENT_TYPE_EXAMPLES["message.delivered"]
    })
    for (const e of res.json.data) expect(eventDataProblems(e.type, e.example), e.type).toEqual([])
  })

  it("answers a public key and a test-mode key alike, and the typed client reads it", async () => {
    const tenant = uniqueTenant()
    const { key: publicKey } = await platform.createKey(tenant, "live", "public")
    const { key: testKey } = await platform.createKey(tenant, "test", "secret")
    const viaPublic = await platform.api("GET", PATH, { key: publicKey })
    expect(viaPublic.status, viaPublic.text).toBe(200)
    expect(viaPublic.json.data).toHaveLength(WEBHOOK_EVENT_TYPES.length)
    const { data } = await platform.client(testKey).eventTypes.list()
    expect(data.map((e) => e.type)).toEqual([...WEBHOOK_EVENT_TYPES])
  })

  it("refuses a request without a valid key", async () => {
    const none = await platform.api("GET", PATH)
    expect(none.status).toBe(401)
    expect(none.json.error.code).toBe("INVALID_API_KEY")
    const unknown = await platform.api("GET", PATH, { key: "dv_live_pk_unknown" })
    expect(unknown.status).toBe(401)
  })
})

describe("ORBIT_STRICT_EVENT_DATA=true", () => {
  it("moves an event whose data fails its schema to the invalid topic with the reason, and delivers a conforming one", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant, "live", "secret")
    await platform.client(key).webhooks.create({ url: receiver.url("/strict"), events: ["message.sent"] })

    const event = (data: Record<string, unknown>) => ({
      id: newEventId(), type: "message.sent", tenant_id: tenant, mode: "live", created_at: new Date().toISOString(), data
    })
    const bad = event({ ...EVENT_TYPE_EXAMPLES["message.sent"], status: "delivered", segments: "one" })
    const good = event({ ...EVENT_TYPE_EXAMPLES["message.sent"] })
    // One key, so one partition: the bad event is fanned out before the good one.
    await producer.send({
      topic: topicsFor(platform.topicPrefix).sourceEvents.name,
      acks: -1,
      messages: [bad, good].map((e) => ({ key: tenant, value: JSON.stringify(e) }))
    })

    await platform.waitFor("the conforming event at the receiver", async () =>
      receiver.received.some((r) => r.headers["x-devotel-event-id"] === good.id))
    expect(receiver.received.filter((r) => r.headers["x-devotel-event-id"] === bad.id)).toEqual([])

    const mine = async () =>
      (await readRecords(topicsFor(platform.topicPrefix).invalidEvents.name)).filter((r) => r.value.includes(bad.id) || r.value.includes(good.id))
    await platform.waitFor("the refused event on the invalid topic", async () => (await mine()).length > 0)
    const invalid = await mine()
    expect(invalid).toHaveLength(1)
    expect(JSON.parse(invalid[0]!.value).id).toBe(bad.id)
    expect(invalid[0]!.headers["orbit-invalid-reason"]).toBe("invalid_data")
    expect(invalid[0]!.headers["orbit-invalid-detail"]).toMatch(/data\.status: Expected "sent".*data\.segments: Expected (a |an )?(number|integer)/)
  }, 90_000)
})
