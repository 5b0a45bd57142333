/**
 * Per-endpoint throttle across services: `rate_limit_per_second` through the API (validation, the
 * resource), the projection and the dispatcher's index, then paced deliveries to a real HTTPS
 * receiver while a second dispatcher joins and the first leaves (two rebalances of the delivery
 * groups), and a receiver's 429 with Retry-After holding an endpoint back. Real processes, real
 * Kafka, real Postgres.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { randomUUID } from "node:crypto"
import { newEventId } from "@orbit/domain"
import { Kafka, logLevel, type KafkajsProducer as Producer } from "@orbit/kafka"
import { brokers } from "../../infra/kafka.ts"
import { serviceArgs } from "../../infra/services.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type HttpsReceiver, makeSelfSignedCert, type Received, type SelfSignedCert, startHttpsReceiver } from "../src/HttpsReceiver.ts"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

let tls: SelfSignedCert
let receiver: HttpsReceiver
let platform: Platform
let kafka: Kafka
let producer: Producer
let second: ChildProcess | undefined

beforeAll(async () => {
  tls = makeSelfSignedCert()
  receiver = await startHttpsReceiver(tls)
  platform = await startPlatform({
    services: ["projection", "registration", "dispatcher"],
    env: {
      ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8",
      ORBIT_EXTRA_CA_FILE: tls.caFile,
      // The leaving dispatcher hands its unfinished tasks back soon, mid-stream.
      DISPATCHER_SHUTDOWN_GRACE_MS: "1500",
      DISPATCHER_SESSION_TIMEOUT_MS: "10000"
    }
  })
  kafka = new Kafka({ clientId: "e2e-throttle", brokers: brokers(), logLevel: logLevel.NOTHING })
  producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
})

afterAll(async () => {
  if (second !== undefined && second.exitCode === null && second.signalCode === null) {
    const exited = once(second, "exit")
    second.kill("SIGTERM")
    await exited
  }
  await producer?.disconnect()
  await platform?.close()
  await receiver?.close()
  tls?.cleanup()
})

/** Publishes `n` domain events of a tenant at once, like an upstream producer. */
const publish = async (tenantId: string, n: number) => {
  const events = Array.from({ length: n }, () => ({
    id: newEventId(), type: "message.delivered", tenant_id: tenantId, mode: "live",
    created_at: new Date().toISOString(), data: { message_id: randomUUID() }
  }))
  await producer.send({
    topic: `${platform.topicPrefix}orbit.events`,
    acks: -1,
    messages: events.map((e) => ({ key: tenantId, value: JSON.stringify(e) }))
  })
  return events.map((e) => e.id)
}

/** One attempt per delivery: a failed one is not retried. */
const ONE_ATTEMPT = { strategy: "custom", delays_seconds: [] }

const create = (key: string, body: Record<string, unknown>) => platform.api("POST", "/api/v1/webhooks", { key, body })

/** The most requests of `received` within any one second. */
const busiestSecond = (received: ReadonlyArray<Received>) => {
  const at = received.map((r) => r.at).sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < at.length; i++) {
    while (at[i]! - at[j]! >= 1_000) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}

describe("rate_limit_per_second", () => {
  let key: string
  let tenant: string

  it("is refused out of 1–10,000 or when not an integer, with details, storing nothing", async () => {
    tenant = uniqueTenant()
    key = (await platform.createKey(tenant)).key
    const base = { url: receiver.url("/refused"), events: ["message.delivered"] }
    for (const bad of [0, 10_001, -1, 2.5, "5", true]) {
      const res = await create(key, { ...base, rate_limit_per_second: bad })
      expect(res.status, JSON.stringify(bad)).toBe(422)
      expect(res.json.error.code).toBe("VALIDATION_ERROR")
      expect(res.json.error.details).toContainEqual(expect.objectContaining({ field: "rate_limit_per_second" }))
    }
    expect((await platform.api("GET", "/api/v1/webhooks", { key })).json.data).toEqual([])

    const made = await create(key, { ...base, rate_limit_per_second: 10_000 })
    expect(made.status).toBe(201)
    const id = made.json.data.id as string
    const put = await platform.api("PUT", `/api/v1/webhooks/${id}`, { key, body: { ...base, rate_limit_per_second: 0 } })
    expect(put.status).toBe(422)
    expect(put.json.error.details).toContainEqual(expect.objectContaining({ field: "rate_limit_per_second" }))
    expect((await platform.api("GET", `/api/v1/webhooks/${id}`, { key })).json.data.rate_limit_per_second).toBe(10_000)
    await platform.api("DELETE", `/api/v1/webhooks/${id}`, { key })
  })

  it("is shown in the resource, set and cleared by POST and PUT; null when not given", async () => {
    const base = { url: receiver.url("/shown"), events: ["message.delivered"] }
    const made = await create(key, { ...base, rate_limit_per_second: 7 })
    expect(made.status).toBe(201)
    expect(made.json.data.rate_limit_per_second).toBe(7)
    const id = made.json.data.id as string
    expect((await platform.api("GET", `/api/v1/webhooks/${id}`, { key })).json.data.rate_limit_per_second).toBe(7)
    const listed = (await platform.api("GET", "/api/v1/webhooks", { key })).json.data
    expect(listed.find((e: { id: string }) => e.id === id).rate_limit_per_second).toBe(7)
    const cleared = await platform.api("PUT", `/api/v1/webhooks/${id}`, { key, body: base })
    expect(cleared.json.data.rate_limit_per_second).toBeNull()
    expect((await platform.api("GET", `/api/v1/webhooks/${id}`, { key })).json.data.rate_limit_per_second).toBeNull()
    const plain = await create(key, base)
    expect(plain.json.data.rate_limit_per_second).toBeNull()
    await platform.api("DELETE", `/api/v1/webhooks/${id}`, { key })
    await platform.api("DELETE", `/api/v1/webhooks/${plain.json.data.id}`, { key })
  })

  it("limit 5/s, 50 events: never more than 5 (+1) in any second, all 50 arrive, while dispatchers join and leave", async () => {
    const t = uniqueTenant()
    const k = (await platform.createKey(t)).key
    const made = await create(k, { url: receiver.url("/paced"), events: ["message.delivered"], retry_policy: ONE_ATTEMPT, rate_limit_per_second: 5 })
    expect(made.status).toBe(201)
    const ids = await publish(t, 50)
    const paced = () => receiver.received.filter((r) => r.path === "/paced")
    const distinct = () => new Set(paced().map((r) => r.headers["x-devotel-event-id"])).size

    // A second dispatcher joins the groups (a rebalance may move the endpoint's partition to it)…
    await platform.eventually("10 paced deliveries", () => distinct() >= 10)
    second = spawn(process.execPath, serviceArgs("dispatcher"), { env: platform.env, stdio: "ignore" })
    const admin = kafka.admin()
    await admin.connect()
    const members = async () =>
      (await admin.describeGroups([`${platform.topicPrefix}orbit-dispatcher-delivery`])).groups[0]?.members.length ?? 0
    await platform.eventually("the second dispatcher in the delivery group", async () => (await members()) === 2)
    // …and then the first leaves (its partitions, the endpoint's among them, move to the second).
    await platform.eventually("25 paced deliveries", () => distinct() >= 25)
    await platform.stop("dispatcher")
    await platform.eventually("the first dispatcher out of the delivery group", async () => (await members()) === 1)
    await admin.disconnect()

    await platform.eventually("all 50 paced deliveries", () => distinct() === 50, 90_000)
    expect(new Set(paced().map((r) => r.headers["x-devotel-event-id"]))).toEqual(new Set(ids))
    // On failure: each receipt as ms since the first, with its event (a repeat is a re-delivery).
    const t0 = paced()[0]!.at
    const timeline = paced().map((r) => `${r.at - t0}:${r.headers["x-devotel-event-id"]!.slice(-4)}`).join(" ")
    expect(busiestSecond(paced()), timeline).toBeLessThanOrEqual(6)
  })

  it("a 429 with Retry-After holds that endpoint back, and not the others", async () => {
    // Runs on the second dispatcher alone: the first one left in the test before.
    const t = uniqueTenant()
    const k = (await platform.createKey(t)).key
    let first = true
    receiver.respond("/busy", () => {
      if (!first) return 200
      first = false
      return { status: 429, headers: { "retry-after": "3" } }
    })
    const body = { events: ["message.delivered"], retry_policy: ONE_ATTEMPT }
    expect((await create(k, { ...body, url: receiver.url("/busy") })).status).toBe(201)
    expect((await create(k, { ...body, url: receiver.url("/calm") })).status).toBe(201)
    await publish(t, 1)
    const refused = await platform.eventually("the 429", () => receiver.received.find((r) => r.path === "/busy"))
    await publish(t, 3)
    const busy = await platform.eventually("3 more on /busy", () => {
      const got = receiver.received.filter((r) => r.path === "/busy")
      return got.length >= 4 ? got : undefined
    })
    for (const r of busy.slice(1)) expect(r.at - refused.at).toBeGreaterThanOrEqual(3_000)
    // The other endpoint of the tenant got the same 3 events meanwhile, without waiting.
    const calm = receiver.received.filter((r) => r.path === "/calm")
    expect(calm.length).toBe(4)
    expect(Math.max(...calm.map((r) => r.at))).toBeLessThan(busy[1]!.at)
  })
})
