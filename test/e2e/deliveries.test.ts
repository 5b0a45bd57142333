/**
 * Deliveries across services: registration (API) → dispatcher (real HTTPS receiver) → projection
 * (`delivery_attempts`) → `GET /api/v1/webhooks/{id}/deliveries`, and the dead letter → replay CLI
 * round trip. Real processes, real Kafka, real Postgres; no mocks.
 */
import { execFile } from "node:child_process"
import { createHmac, randomUUID } from "node:crypto"
import path from "node:path"
import { newEventId } from "@orbit/domain"
import { Kafka, logLevel, type KafkajsProducer as Producer } from "@orbit/kafka"
import { brokers } from "../../infra/kafka.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CreateEndpointRequest } from "@orbit/client"
import { type HttpsReceiver, type Received } from "../src/HttpsReceiver.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import { type Platform, uniqueTenant } from "../src/Platform.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")
const BROKERS = brokers()

let receiver: HttpsReceiver
let platform: Platform
let kafka: Kafka
let producer: Producer
let rig: DeliveryRig

beforeAll(async () => {
  rig = await startDeliveryRig()
  ;({ receiver, platform } = rig)
  kafka = new Kafka({ clientId: "e2e-deliveries", brokers: BROKERS, logLevel: logLevel.NOTHING })
  producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
})

afterAll(async () => {
  await producer?.disconnect()
  await rig?.close()
  if (kafka && platform) {
    const admin = kafka.admin()
    await admin.connect()
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(platform.topicPrefix))
    await admin.deleteTopics({ topics: mine }).catch(() => undefined)
    await admin.disconnect()
  }
})


const domainEvent = (tenantId: string, type = "message.delivered") => ({
  id: newEventId(),
  type,
  tenant_id: tenantId,
  mode: "live",
  created_at: new Date().toISOString(),
  data: { message_id: randomUUID(), channel: "sms" }
})

/** Publishes like an upstream producer (API.md §8): topic `orbit.events`, key = tenant id. */
const publish = (event: ReturnType<typeof domainEvent>) =>
  producer.send({
    topic: `${platform.topicPrefix}orbit.events`,
    acks: -1,
    messages: [{ key: event.tenant_id, value: JSON.stringify(event) }]
  })

const receivedEvent = (eventId: string) => receiver.received.filter((r) => r.headers["x-devotel-event-id"] === eventId)

/** The first request the receiver got for an event, once it has arrived. */
const firstDelivery = (what: string, eventId: string) => platform.eventually(what, () => receivedEvent(eventId)[0])

/** The `v1` values of a request's X-Devotel-Signature, and the one a secret gives, computed from scratch. */
const devotelSignatures = (got: Received) => {
  const header = got.headers["x-devotel-signature"]!
  const t = /(?:^|,)t=(\d+)/.exec(header)![1]!
  return {
    v1: [...header.matchAll(/v1=([0-9a-f]{64})/g)].map((m) => m[1]),
    of: (secret: string) => createHmac("sha256", secret).update(`${t}.${got.body}`).digest("hex")
  }
}

/** Registers through the client, which rejects anything but a 201 with the error envelope's code. */
const register = async (key: string, body: Record<string, unknown>) =>
  (await platform.client(key).webhooks.create(body as CreateEndpointRequest)).data

interface Attempt {
  id: string
  delivery_id: string
  endpoint_id: string
  event_id: string
  event_type: string
  attempt: number
  outcome: "succeeded" | "failed"
  http_status: number | null
  duration_ms: number
  error_class: string | null
  error_message: string | null
  next_attempt_at: string | null
  dead_lettered: boolean
  attempted_at: string
  trace_id: string | null
}

const deliveries = async (key: string, id: string, query = "") => {
  const res = await platform.api("GET", `/api/v1/webhooks/${id}/deliveries${query}`, { key })
  return res as { status: number; headers: Headers; json: any; text: string }
}

/** Waits until the projection has `n` attempts for the endpoint, and returns them (newest first). */
const attemptsOf = (key: string, id: string, n: number, extra: (a: Array<Attempt>) => boolean = () => true) =>
  platform.eventually(`${n} attempts of ${id} in the API`, async () => {
    const data = await platform.client(key).webhooks.deliveries(id, { limit: 100 }).then((page) => page.data, () => undefined)
    return data !== undefined && data.length >= n && extra(data) ? data : undefined
  })

const runCli = (args: Array<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(ROOT, "packages/cli/src/main.ts"), ...args], { env: platform.env, timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      resolve({ code, stdout, stderr })
    })
  })

describe("registration → dispatcher → projection", () => {
  let tenant: string
  let key: string
  let endpoint: { id: string; signing_secret: string }
  const published: Array<string> = []

  it("an endpoint registered by a 201 receives an event published right after, signed", async () => {
    tenant = uniqueTenant()
    key = (await platform.createKey(tenant)).key
    endpoint = await register(key, { url: receiver.url("/ok"), events: ["message.delivered"], timeout_seconds: 5 })
    // No waiting between the 201 and the publish: the dispatcher's index must already match it.
    const event = domainEvent(tenant)
    await publish(event)
    published.push(event.id)

    const got = await firstDelivery("the webhook", event.id)
    expect(got.path).toBe("/ok")
    expect(JSON.parse(got.body)).toMatchObject({ id: event.id, type: "message.delivered", data: event.data })
    expect(got.headers["x-devotel-delivery-id"]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    // X-Devotel-Signature checked from scratch with the secret the 201 returned.
    const sig = devotelSignatures(got)
    expect(sig.v1).toContain(sig.of(endpoint.signing_secret))
  })

  it("lists the attempts newest first, paginated, with outcome, status and attempt number", async () => {
    for (let i = 0; i < 4; i++) {
      const event = domainEvent(tenant)
      await publish(event)
      published.push(event.id)
    }
    await platform.eventually("5 webhooks", () => published.every((id) => receivedEvent(id).length > 0))

    const all = await attemptsOf(key, endpoint.id, 5)
    expect(all).toHaveLength(5)
    expect(new Set(all.map((a) => a.event_id))).toEqual(new Set(published))
    for (const a of all) {
      const seen = receivedEvent(a.event_id)[0]!
      expect(a).toMatchObject({
        endpoint_id: endpoint.id,
        event_type: "message.delivered",
        attempt: 1,
        outcome: "succeeded",
        http_status: 200,
        error_class: null,
        next_attempt_at: null,
        dead_lettered: false,
        delivery_id: seen.headers["x-devotel-delivery-id"],
        // No OTLP endpoint and no ORBIT_TRACING: the attempts were not traced.
        trace_id: null
      })
      expect(a.duration_ms).toBeGreaterThanOrEqual(0)
      expect(new Date(a.attempted_at).toISOString()).toBe(a.attempted_at)
    }
    const times = all.map((a) => Date.parse(a.attempted_at))
    expect(times).toEqual([...times].sort((x, y) => y - x))

    // Pages of 2: every attempt exactly once, same order; cursor null exactly when has_more is false.
    const walked: Array<string> = []
    let cursor: string | null = null
    let pages = 0
    do {
      const q: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : "?limit=2"
      const res = await deliveries(key, endpoint.id, q)
      expect(res.status).toBe(200)
      expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
      expect(res.json.meta.pagination.cursor === null).toBe(!res.json.meta.pagination.has_more)
      walked.push(...res.json.data.map((a: Attempt) => a.id))
      cursor = res.json.meta.pagination.cursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect(walked).toEqual(all.map((a) => a.id))

    // Default page size 25; limit is 1–100; query is validated.
    const first = await deliveries(key, endpoint.id)
    expect(first.json.data).toHaveLength(5)
    expect(first.json.meta.pagination).toEqual({ cursor: null, has_more: false })
    for (const bad of ["?limit=0", "?limit=101", "?limit=abc", "?limit=2.5", "?limit=1e1", "?limit=0x10", "?limit=", "?limit=1&limit=2", "?unknown=1"]) {
      const res = await deliveries(key, endpoint.id, bad)
      expect(res.status, bad).toBe(422)
      expect(res.json.error.code).toBe("VALIDATION_ERROR")
    }
    expect((await deliveries(key, endpoint.id, "?limit=100")).status).toBe(200)
  })

  it("is tenant- and mode-scoped: other tenants and other modes get 404; cursors are bound to the endpoint", async () => {
    const other = (await platform.createKey(uniqueTenant())).key
    const res = await deliveries(other, endpoint.id)
    expect(res.status).toBe(404)
    expect(res.json.error.code).toBe("NOT_FOUND")
    expect(res.text).not.toContain(endpoint.id)

    const testMode = (await platform.createKey(tenant, "test")).key
    expect((await deliveries(testMode, endpoint.id)).status).toBe(404)
    expect((await deliveries(key, "wh_doesnotexist0000000000")).status).toBe(404)
    expect((await deliveries(key, "not-an-id")).status).toBe(404)
    expect((await deliveries("dv_live_sk_nope", endpoint.id)).status).toBe(401)

    // A read-only key of the tenant may read the log.
    const readOnly = (await platform.createKey(tenant, "live", "public")).key
    expect((await deliveries(readOnly, endpoint.id)).json.data).toHaveLength(5)

    const page = await deliveries(key, endpoint.id, "?limit=2")
    const cursor: string = page.json.meta.pagination.cursor
    // A different character in the signature: the check below guards against "replacing" a letter with itself.
    const flipped = cursor.at(-2) === "A" ? "B" : "A"
    const tampered = `${cursor.slice(0, -2)}${flipped}${cursor.slice(-1)}`
    expect(tampered).not.toBe(cursor)
    for (const bad of [tampered, "garbage", cursor.split(".")[0]!]) {
      const r = await deliveries(key, endpoint.id, `?cursor=${encodeURIComponent(bad)}`)
      expect(r.status).toBe(400)
      expect(r.json.error.code).toBe("INVALID_CURSOR")
    }
    // The same cursor on another endpoint of the tenant, or on the endpoint list, is refused.
    const quiet = await register(key, { url: receiver.url("/quiet"), events: ["call.completed"] })
    const empty = await deliveries(key, quiet.id)
    expect(empty.json).toMatchObject({ data: [], meta: { pagination: { cursor: null, has_more: false } } })
    expect((await deliveries(key, quiet.id, `?cursor=${encodeURIComponent(cursor)}`)).json.error.code).toBe("INVALID_CURSOR")
    expect((await platform.api("GET", `/api/v1/webhooks?cursor=${encodeURIComponent(cursor)}`, { key })).json.error.code)
      .toBe("INVALID_CURSOR")
  })

  it("is in the OpenAPI document", async () => {
    const spec = (await platform.api("GET", "/api/v1/openapi.json")).json
    const op = spec.paths["/api/v1/webhooks/{id}/deliveries"]?.get
    expect(op).toBeDefined()
    expect(op.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["id", "cursor", "limit"]))
  })
})

describe("dead letter and replay", () => {
  it("a short custom policy dead-letters after 2 attempts; `deliveries replay` re-sends it with the same delivery id", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const failing = new Set(["/flaky-a", "/flaky-b"])
    for (const p of failing) receiver.respond(p, (r) => (failing.has(r.path) ? 500 : 200))
    const policy = { strategy: "custom", delays_seconds: [1] }
    const a = await register(key, { url: receiver.url("/flaky-a"), events: ["*"], retry_policy: policy, timeout_seconds: 5 })
    const b = await register(key, { url: receiver.url("/flaky-b"), events: ["*"], retry_policy: policy, timeout_seconds: 5 })
    const event = domainEvent(tenant, "call.completed")
    await publish(event)

    const onPath = (p: string) => receivedEvent(event.id).filter((r) => r.path === p)
    await platform.eventually("2 failed attempts on each endpoint", () => onPath("/flaky-a").length >= 2 && onPath("/flaky-b").length >= 2)
    const [a1, a2] = onPath("/flaky-a")
    expect([a1!.status, a2!.status]).toEqual([500, 500])
    expect(a2!.headers["x-devotel-delivery-id"]).toBe(a1!.headers["x-devotel-delivery-id"])
    expect(a2!.at - a1!.at).toBeGreaterThanOrEqual(1000) // the retry never fires early
    const deliveryId = a1!.headers["x-devotel-delivery-id"]!

    // Both attempts are in the log; the second is the last one and was dead-lettered.
    const logged = await attemptsOf(key, a.id, 2)
    expect(logged.map((x) => [x.attempt, x.outcome, x.http_status, x.error_class, x.dead_lettered])).toEqual([
      [2, "failed", 500, "http_status", true],
      [1, "failed", 500, "http_status", false]
    ])
    expect(logged[1]!.next_attempt_at).not.toBeNull()
    expect(logged[0]!.next_attempt_at).toBeNull()
    expect(new Set(logged.map((x) => x.delivery_id))).toEqual(new Set([deliveryId]))
    await attemptsOf(key, b.id, 2, (l) => l.some((x) => x.dead_lettered))

    // Nothing more comes by itself. Sentinel: another tenant's endpoint with the same policy fails
    // once, after both dead letters; its retry (due later than any retry of /flaky-a could be)
    // comes through the same retry path.
    const sentinelTenant = uniqueTenant()
    const { key: sentinelKey } = await platform.createKey(sentinelTenant)
    receiver.respond("/sentinel-retry", () => (receiver.received.some((r) => r.path === "/sentinel-retry") ? 200 : 500))
    await register(sentinelKey, { url: receiver.url("/sentinel-retry"), events: ["*"], retry_policy: policy, timeout_seconds: 5 })
    const sentinel = domainEvent(sentinelTenant, "call.completed")
    await publish(sentinel)
    await platform.eventually("the sentinel's retry", () => receivedEvent(sentinel.id).find((r) => r.status === 200))
    expect(onPath("/flaky-a")).toHaveLength(2)
    expect(onPath("/flaky-b")).toHaveLength(2)

    failing.clear() // the receivers recover

    // Dead-lettered before --since: nothing to replay.
    const none = await runCli(["deliveries", "replay", "--endpoint", a.id, "--since", new Date(Date.now() + 3_600_000).toISOString()])
    expect(none.stderr).not.toMatch(/failed/)
    expect(none.code).toBe(0)
    expect(none.stdout).toMatch(/^replayed 0 /)

    const replay = await runCli(["deliveries", "replay", "--endpoint", a.id, "--since", new Date(a1!.at - 60_000).toISOString()])
    expect(replay.code).toBe(0)
    expect(replay.stdout).toMatch(/^replayed 1 dead-lettered delivery of wh_/)

    const again = await platform.eventually("the replayed delivery", () => onPath("/flaky-a")[2])
    expect(again.status).toBe(200)
    expect(again.headers["x-devotel-delivery-id"]).toBe(deliveryId)
    expect(again.headers["x-devotel-event-id"]).toBe(event.id)
    expect(again.body).toBe(a1!.body)

    // The replay is a fresh first attempt in the log, with the same delivery id.
    const after = await attemptsOf(key, a.id, 3)
    expect(after[0]).toMatchObject({ attempt: 1, outcome: "succeeded", http_status: 200, delivery_id: deliveryId, dead_lettered: false })

    // Only the selected endpoint's dead letters were replayed. Sentinel: a new event for both
    // endpoints; a replayed /flaky-b task would be ahead of it in /flaky-b's partition.
    const later = domainEvent(tenant, "call.completed")
    await publish(later)
    await platform.eventually("the later event on both endpoints", () =>
      ["/flaky-a", "/flaky-b"].every((p) => receivedEvent(later.id).some((r) => r.path === p)))
    expect(onPath("/flaky-b")).toHaveLength(2)
    expect(onPath("/flaky-a")).toHaveLength(3)
  })

  it("refuses bad arguments with a clear message and exit code 2", async () => {
    const cases: Array<[Array<string>, RegExp]> = [
      [[], /--endpoint is required/],
      [["--endpoint", "nope"], /--endpoint must be an endpoint id/],
      [["--endpoint", "wh_abcdefghijklmnopqrstuvwx", "--since", "last tuesday"], /--since must be an ISO 8601 time/]
    ] // the argument schema's finer points are in services/dispatcher/test/replay.test.ts
    const results = await Promise.all(cases.map(([args]) => runCli(["deliveries", "replay", ...args])))
    for (const [i, [args, message]] of cases.entries()) {
      const r = results[i]!
      expect(r.code, args.join(" ")).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stdout).toBe("")
    }
  })
})

describe("secret rotation", () => {
  it("rotate-secret returns a new secret once; deliveries carry both signatures, new first, until the grace window ends", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const endpoint = await register(key, { url: receiver.url("/rotating"), events: ["message.delivered"] })

    const bad = await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/rotate-secret`, { key, body: { grace_period_seconds: -1 } })
    expect(bad.status).toBe(422)
    const { key: publicKey } = await platform.createKey(tenant, "live", "public")
    expect((await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/rotate-secret`, { key: publicKey })).status).toBe(403)
    const { key: otherKey } = await platform.createKey(uniqueTenant())
    expect((await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/rotate-secret`, { key: otherKey })).status).toBe(404)

    const rotated = await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/rotate-secret`, { key })
    expect(rotated.status).toBe(200)
    const newSecret: string = rotated.json.data.signing_secret
    expect(newSecret).toMatch(/^whsec_/)
    expect(newSecret).not.toBe(endpoint.signing_secret)
    expect((await platform.api("GET", `/api/v1/webhooks/${endpoint.id}`, { key })).text).not.toContain(newSecret)

    const event = domainEvent(tenant)
    await publish(event)
    const sig = devotelSignatures(await firstDelivery("the delivery after rotation", event.id))
    expect(sig.v1).toEqual([sig.of(newSecret), sig.of(endpoint.signing_secret)])

    // With a zero grace window only the new secret signs.
    const again = await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/rotate-secret`, {
      key,
      body: { secret: "a-caller-chosen-secret-0123456789", grace_period_seconds: 0 }
    })
    expect(again.json.data.signing_secret).toBe("a-caller-chosen-secret-0123456789")
    const second = domainEvent(tenant)
    await publish(second)
    const sig2 = devotelSignatures(await firstDelivery("the delivery after the second rotation", second.id))
    expect(sig2.v1).toEqual([sig2.of("a-caller-chosen-secret-0123456789")])
  })
})

describe("test events", () => {
  it("POST /{id}/test sends a signed webhook.test to that endpoint only, whatever it subscribes to, into its attempt log", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    // Subscribed to another type only: a test event reaches it all the same.
    const target = await register(key, { url: receiver.url("/test-target"), events: ["call.completed"] })
    // Subscribed to everything, same tenant: must not receive the other endpoint's test.
    const bystander = await register(key, { url: receiver.url("/test-bystander"), events: ["*"] })

    const sent = await platform.api("POST", `/api/v1/webhooks/${target.id}/test`, { key })
    expect(sent.status).toBe(202)
    const { event_id, delivery_id, endpoint_id, type } = sent.json.data
    expect({ endpoint_id, type }).toEqual({ endpoint_id: target.id, type: "webhook.test" })
    expect(event_id).toMatch(/^evt_[0-9a-f]{32}$/)

    const got = await firstDelivery("the test delivery", event_id)
    expect(got.path).toBe("/test-target")
    expect(got.headers["x-devotel-delivery-id"]).toBe(delivery_id)
    expect(got.headers["x-devotel-event-type"]).toBe("webhook.test")
    expect(JSON.parse(got.body)).toMatchObject({ id: event_id, type: "webhook.test", data: { endpoint_id: target.id } })
    const sig = devotelSignatures(got)
    expect(sig.v1).toContain(sig.of(target.signing_secret))

    const [attempt] = await attemptsOf(key, target.id, 1)
    expect(attempt).toMatchObject({ delivery_id, event_id, event_type: "webhook.test", outcome: "succeeded", attempt: 1 })
    // Sentinel: a later event of the tenant, which only the bystander subscribes to. It is fanned
    // out after the test event, so a bystander copy of the test event would have come first.
    const sentinel = domainEvent(tenant)
    await publish(sentinel)
    await firstDelivery("the sentinel on the bystander", sentinel.id)
    expect(receiver.received.filter((r) => r.path === "/test-bystander").map((r) => r.headers["x-devotel-event-id"])).toEqual([sentinel.id])
    expect(receivedEvent(event_id)).toHaveLength(1)
    // Its attempt log holds the sentinel only, once the projection has every attempt so far.
    await attemptsOf(key, bystander.id, 1)
    await platform.projectionCaughtUp("attempts")
    expect((await deliveries(key, bystander.id)).json.data.map((a: Attempt) => a.event_id)).toEqual([sentinel.id])

    const spec = (await platform.api("GET", "/api/v1/openapi.json")).json
    expect(Object.keys(spec.paths["/api/v1/webhooks/{id}/test"]?.post?.responses ?? {})).toContain("202")
  })

  it("refuses a public key (403), another tenant's endpoint (404), a body with fields (422) and an inactive endpoint (422)", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const endpoint = await register(key, { url: receiver.url("/test-refusals"), events: ["*"] })
    const { key: publicKey } = await platform.createKey(tenant, "live", "public")
    expect((await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/test`, { key: publicKey })).status).toBe(403)
    const { key: otherKey } = await platform.createKey(uniqueTenant())
    expect((await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/test`, { key: otherKey })).status).toBe(404)
    const { key: testModeKey } = await platform.createKey(tenant, "test")
    expect((await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/test`, { key: testModeKey })).status).toBe(404)
    const withFields = await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/test`, { key, body: { type: "message.sent" } })
    expect(withFields.status).toBe(422)
    expect(withFields.json.error.details).toEqual([{ field: "type", value: "message.sent", expected: "no such field (this request takes no options)" }])
    expect((await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/test`, { key, body: [] })).status).toBe(422)
    expect((await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/test`, { key, body: {} })).status).toBe(202)

    const off = await platform.api("PUT", `/api/v1/webhooks/${endpoint.id}`, { key, body: { url: receiver.url("/test-refusals"), events: ["*"], active: false } })
    expect(off.status).toBe(200)
    const inactive = await platform.api("POST", `/api/v1/webhooks/${endpoint.id}/test`, { key })
    expect(inactive.status).toBe(422)
    expect(inactive.json.error).toMatchObject({ code: "VALIDATION_ERROR", details: [{ field: "active", value: false }] })
  })
})
