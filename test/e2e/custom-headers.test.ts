/**
 * Custom headers: set on POST and PUT, shown in the resource, sent on every delivery through the
 * real dispatcher to a real HTTPS receiver, refused entry by entry when bad (nothing stored,
 * nothing published). Real processes, real Kafka, real Postgres.
 */
import { randomUUID } from "node:crypto"
import { Kafka, logLevel } from "@orbit/kafka"
import { brokers } from "../../infra/kafka.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { HttpsReceiver } from "../src/HttpsReceiver.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type Platform, uniqueTenant } from "../src/Platform.ts"

let receiver: HttpsReceiver
let platform: Platform
let kafka: Kafka
let rig: DeliveryRig

beforeAll(async () => {
  rig = await startDeliveryRig()
  ;({ receiver, platform } = rig)
  kafka = new Kafka({ clientId: "e2e-custom-headers", brokers: brokers(), logLevel: logLevel.NOTHING })
})

afterAll(async () => {
  await rig?.close()
})

const BASE = "/api/v1/webhooks"

/** The request the receiver got for an event (waits for it). */
const deliveryOf = (eventId: string) =>
  platform.eventually(`the delivery of ${eventId}`, () => receiver.received.find((r) => r.headers["x-devotel-event-id"] === eventId))

const endpointEventsEnd = async () => {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return (await admin.fetchTopicOffsets(`${platform.topicPrefix}webhooks.endpoint-events`)).map((o) => `${o.partition}:${o.high}`).sort().join(",")
  } finally {
    await admin.disconnect()
  }
}

describe("custom headers", () => {
  let tenant: string
  let key: string
  let id: string
  const path = `/headers-${randomUUID()}`
  const body = () => ({ url: receiver.url(path), events: ["message.delivered"], retry_policy: { strategy: "custom", delays_seconds: [] } })

  it("are stored on POST, shown by create, get and list, and sent on a delivery alongside the platform's headers", async () => {
    tenant = uniqueTenant()
    key = (await platform.createKey(tenant)).key
    const headers = { "X-Orbit-Account": "acme-eu", Authorization: "Bearer receiver-token", "x-empty": "" }
    const created = await platform.api("POST", BASE, { key, body: { ...body(), headers } })
    expect(created.status, created.text).toBe(201)
    id = created.json.data.id
    expect(created.json.data.headers).toEqual(headers)
    expect((await platform.api("GET", `${BASE}/${id}`, { key })).json.data.headers).toEqual(headers)
    expect((await platform.api("GET", BASE, { key })).json.data[0].headers).toEqual(headers)

    const eventId = await platform.publish(tenant)
    const got = await deliveryOf(eventId)
    expect(got.headers["x-orbit-account"]).toBe("acme-eu")
    expect(got.headers["authorization"]).toBe("Bearer receiver-token")
    expect(got.headers["x-empty"]).toBe("")
    // The platform's own headers are all still there and unchanged.
    expect(got.headers["content-type"]).toBe("application/json; charset=utf-8")
    expect(got.headers["user-agent"]).toBe("Devotel-Webhooks/1.0")
    expect(got.headers["x-devotel-event-type"]).toBe("message.delivered")
    expect(got.headers["x-devotel-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/)
    expect(got.headers["webhook-id"]).toBe(eventId)
  })

  it("are replaced by PUT (the next delivery carries the new set) and cleared by a PUT without them", async () => {
    const replaced = await platform.api("PUT", `${BASE}/${id}`, { key, body: { ...body(), headers: { "X-Second": "2" } } })
    expect(replaced.status, replaced.text).toBe(200)
    expect(replaced.json.data.headers).toEqual({ "X-Second": "2" })
    const second = await deliveryOf(await platform.publish(tenant))
    expect(second.headers["x-second"]).toBe("2")
    expect(second.headers["x-orbit-account"]).toBeUndefined()

    const cleared = await platform.api("PUT", `${BASE}/${id}`, { key, body: body() })
    expect(cleared.status, cleared.text).toBe(200)
    expect(cleared.json.data.headers).toEqual({})
    const third = await deliveryOf(await platform.publish(tenant))
    expect(third.headers["x-second"]).toBeUndefined()
  })

  it("a bad entry is one 422 detail each, on POST and PUT; nothing is stored or published", async () => {
    const bad = { Host: "evil.example.com", "X-Fine": "ok", "X-Devotel-Signature": "t=1,v1=00", "X-Split": "a\r\nX-Injected: 1", "Bad Name": "v" }
    const before = await endpointEventsEnd()
    const post = await platform.api("POST", BASE, { key, body: { ...body(), headers: bad } })
    expect(post.status, post.text).toBe(422)
    expect(post.json.error.code).toBe("VALIDATION_ERROR")
    expect(post.json.error.details.map((d: { field: string }) => d.field)).toEqual([
      "headers.Host",
      "headers.X-Devotel-Signature",
      "headers.X-Split",
      "headers.Bad Name"
    ])
    const put = await platform.api("PUT", `${BASE}/${id}`, { key, body: { ...body(), headers: bad } })
    expect(put.status, put.text).toBe(422)
    expect(put.json.error.details).toHaveLength(4)
    expect(await endpointEventsEnd()).toBe(before)
    const list = (await platform.api("GET", BASE, { key })).json.data
    expect(list).toHaveLength(1)
    expect(list[0].headers).toEqual({})
  })
})
