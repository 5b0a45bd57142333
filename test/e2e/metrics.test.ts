/**
 * Prometheus metrics (issue 12, point 1): each service's `/metrics` is scraped before and after
 * known traffic through the real broker, Postgres and an HTTPS receiver, parsed with a Prometheus
 * text-format parser, and the counters must have moved by exactly what the traffic did: N
 * deliveries, M failures, K retries, one dead letter, one invalid source record, rate-limited
 * requests of both kinds, and requests under their route templates.
 */
import { randomBytes } from "node:crypto"
import { once } from "node:events"
import net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Kafka, logLevel } from "@orbit/kafka"
import { generateApiKey } from "@orbit/crypto"
import { brokers } from "../../infra/kafka.ts"
import { type DeliveryRig, startDeliveryRig } from "../src/DeliveryRig.ts"
import type { HttpsReceiver } from "../src/HttpsReceiver.ts"
import type { Platform } from "../src/Platform.ts"
import { type Scrape, scrape } from "../src/Scrape.ts"
import { serviceArgs } from "../../infra/services.ts"
import { spawn } from "node:child_process"

let rig: DeliveryRig
let platform: Platform
let receiver: HttpsReceiver

// Small limits, so one key and one address reach them quickly.
const RATE_LIMIT_BURST = 10
const KEY_LOOKUP_BURST = 5

beforeAll(async () => {
  rig = await startDeliveryRig({
    ORBIT_METRICS_SAMPLE_MS: "300",
    ORBIT_RATE_LIMIT_PER_SECOND: "1",
    ORBIT_RATE_LIMIT_BURST: String(RATE_LIMIT_BURST),
    ORBIT_KEY_LOOKUP_RATE_PER_SECOND: "0.1",
    ORBIT_KEY_LOOKUP_BURST: String(KEY_LOOKUP_BURST),
    LOG_LEVEL: "Info"
  })
  ;({ platform, receiver } = rig)
})
afterAll(async () => {
  await rig?.close()
})

const scrapeAll = async () => ({
  registration: await scrape(platform.metricsUrl("registration")),
  projection: await scrape(platform.metricsUrl("projection")),
  dispatcher: await scrape(platform.metricsUrl("dispatcher"))
})
type Scrapes = Awaited<ReturnType<typeof scrapeAll>>

const publishRaw = async (value: string) => {
  const producer = new Kafka({ clientId: "e2e-metrics", brokers: brokers(), logLevel: logLevel.NOTHING }).producer()
  await producer.connect()
  try {
    await producer.send({ topic: `${platform.topicPrefix}orbit.events`, acks: -1, messages: [{ key: "garbage", value }] })
  } finally {
    await producer.disconnect()
  }
}

describe("metrics after known traffic", () => {
  it("serves /metrics on every service in the Prometheus text format, the projection's and dispatcher's on their own ports", async () => {
    const all = await scrapeAll()
    expect(all.registration.family("orbit_http_requests_total")?.type).toBe("COUNTER")
    expect(all.projection.family("orbit_projection_lag_records")?.type).toBe("GAUGE")
    expect(all.dispatcher.family("orbit_deliveries_total")?.type).toBe("COUNTER")
    expect(all.dispatcher.family("orbit_delivery_attempt_duration_seconds")?.type).toBe("HISTOGRAM")
    // The registration's /metrics needs no key, and the others are not on the API port.
    expect(new URL(platform.metricsUrl("dispatcher")).port).not.toBe(new URL(platform.baseUrl).port)
    expect(new URL(platform.metricsUrl("projection")).port).not.toBe(new URL(platform.metricsUrl("dispatcher")).port)
  })

  it("counts deliveries by outcome, tasks, source and invalid records, the dead letter, and the projection's applied records exactly", async () => {
    const tenant = `tenant_${randomBytes(6).toString("hex")}`
    const { key } = await platform.createKey(tenant)
    // /flaky fails each delivery's first attempt and accepts its retry; /dead always fails.
    const failedOnce = new Set<string>()
    receiver.respond("/m-flaky", (r) => {
      const id = r.headers["x-devotel-delivery-id"]!
      if (failedOnce.has(id)) return 200
      failedOnce.add(id)
      return 500
    })
    receiver.respond("/m-dead", () => 503)
    const retryOnce = { strategy: "custom", delays_seconds: [1] }
    const before = await scrapeAll()

    const register = async (path: string, events: Array<string>) => {
      const res = await platform.api("POST", "/api/v1/webhooks", {
        key,
        body: { url: receiver.url(path), events, retry_policy: retryOnce, timeout_seconds: 5 }
      })
      expect(res.status, res.text).toBe(201)
      return res.json.data.id as string
    }
    const ok = await register("/m-ok", ["message.delivered"])
    await register("/m-flaky", ["message.delivered"])
    await register("/m-dead", ["call.completed"])

    const N = 3
    for (let i = 0; i < N; i++) await platform.publish(tenant, { type: "message.delivered" })
    await platform.publish(tenant, { type: "call.completed" })
    await publishRaw("{ this is not an event")

    const on = (path: string) => receiver.received.filter((r) => r.path === path)
    await platform.eventually("every attempt made", () => on("/m-ok").length >= N && on("/m-flaky").length >= 2 * N && on("/m-dead").length >= 2)

    // Two GETs of one endpoint, one unknown path: counted under the route template and `unmatched`.
    for (let i = 0; i < 2; i++) expect((await platform.api("GET", `/api/v1/webhooks/${ok}`, { key })).status).toBe(200)
    expect((await platform.api("GET", `/no/such/${ok}`)).status).toBe(404)

    // The counters move once the outcomes are durable; the attempt projection after them.
    const expected = { success: 2 * N, http_error: N + 2 }
    const delta = (after: Scrape, b: Scrape, name: string, labels: Record<string, string> = {}) => after.value(name, labels) - b.value(name, labels)
    await platform.eventually("the dispatcher's counters to reach the traffic", async () => {
      const d = await scrape(platform.metricsUrl("dispatcher"))
      return delta(d, before.dispatcher, "orbit_dead_letters_total") >= 1 &&
        delta(d, before.dispatcher, "orbit_deliveries_total") >= expected.success + expected.http_error &&
        delta(d, before.dispatcher, "orbit_invalid_source_records_total") >= 1
    })
    await platform.projectionCaughtUp("attempts")
    const after = await scrapeAll()
    const dd = (name: string, labels: Record<string, string> = {}) => delta(after.dispatcher, before.dispatcher, name, labels)

    expect({
      success: dd("orbit_deliveries_total", { outcome: "success" }),
      http_error: dd("orbit_deliveries_total", { outcome: "http_error" }),
      timeout: dd("orbit_deliveries_total", { outcome: "timeout" }),
      connect_error: dd("orbit_deliveries_total", { outcome: "connect_error" }),
      attempt_durations_success: dd("orbit_delivery_attempt_duration_seconds", { outcome: "success" }),
      attempt_durations_http_error: dd("orbit_delivery_attempt_duration_seconds", { outcome: "http_error" }),
      // First attempts only: N to /m-ok, N to /m-flaky, 1 to /m-dead.
      end_to_end: dd("orbit_delivery_end_to_end_seconds"),
      source_events: dd("orbit_dispatcher_source_events_consumed_total"),
      tasks: dd("orbit_dispatcher_delivery_tasks_produced_total"),
      invalid: dd("orbit_invalid_source_records_total"),
      dead_letters: dd("orbit_dead_letters_total")
    }).toEqual({
      success: expected.success,
      http_error: expected.http_error,
      timeout: 0,
      connect_error: 0,
      attempt_durations_success: expected.success,
      attempt_durations_http_error: expected.http_error,
      end_to_end: 2 * N + 1,
      source_events: N + 2,
      tasks: 2 * N + 1,
      invalid: 1,
      dead_letters: 1
    })

    const topic = (t: string) => `${platform.topicPrefix}${t}`
    expect({
      endpoint_events: delta(after.projection, before.projection, "orbit_projection_records_applied_total", { topic: topic("webhooks.endpoint-events") }),
      attempts: delta(after.projection, before.projection, "orbit_projection_records_applied_total", { topic: topic("webhooks.delivery-attempts") })
    }).toEqual({ endpoint_events: 3, attempts: expected.success + expected.http_error })
    expect(delta(after.projection, before.projection, "orbit_projection_batch_duration_seconds", { projection: "attempts" })).toBeGreaterThan(0)

    const rd = (name: string, labels: Record<string, string> = {}) => delta(after.registration, before.registration, name, labels)
    expect({
      registered: rd("orbit_http_requests_total", { method: "POST", route: "/api/v1/webhooks", status: "201" }),
      read: rd("orbit_http_requests_total", { method: "GET", route: "/api/v1/webhooks/{id}", status: "200" }),
      unmatched: rd("orbit_http_requests_total", { method: "GET", route: "unmatched", status: "404" }),
      read_durations: rd("orbit_http_request_duration_seconds", { method: "GET", route: "/api/v1/webhooks/{id}" }),
      read_your_writes_waits: rd("orbit_read_your_writes_wait_seconds")
    }).toEqual({ registered: 3, read: 2, unmatched: 1, read_durations: 2, read_your_writes_waits: 3 })
    // No route label is a raw path: every one is a template or `unmatched`.
    const routes = new Set(after.registration.series("orbit_http_requests_total").map((m) => m.labels.route))
    for (const route of routes) expect(route).toMatch(/^(unmatched|\/[a-z0-9/{}._-]*)$/)
    expect([...routes].filter((r) => r?.includes(ok) || r?.includes("/no/such"))).toEqual([])
  })

  it("samples the gauges: lags and backlogs drain to 0, the failing endpoint's streak shows, no rebuild runs", async () => {
    const settled = await platform.eventually("lags and backlogs to drain", async () => {
      const all = await scrapeAll()
      const d = all.dispatcher
      const drained = ["orbit-dispatcher-fanout", "orbit-dispatcher-delivery", "orbit-dispatcher-retry"]
        .every((group) => d.series("orbit_consumer_lag_records", { group }).length === 1 && d.value("orbit_consumer_lag_records", { group }) === 0) &&
        d.series("orbit_retry_backlog_records").length === 7 && d.value("orbit_retry_backlog_records") === 0 &&
        all.projection.value("orbit_projection_lag_records") === 0 &&
        all.registration.value("orbit_endpoint_failing_longest_seconds") > 0
      return drained ? all : undefined
    })
    expect(settled.dispatcher.value("orbit_retry_backlog_oldest_age_seconds")).toBe(0)
    expect(settled.dispatcher.value("orbit_delivery_attempts_in_flight")).toBe(0)
    expect(settled.dispatcher.value("orbit_endpoints_held_to_one_attempt")).toBe(0)
    for (const projection of ["endpoints", "attempts"]) {
      expect(settled.projection.value("orbit_projection_lag_seconds", { projection })).toBe(0)
      expect(settled.projection.value("orbit_projection_rebuild_progress_ratio", { projection })).toBe(1)
    }
  })

  it("shows a parked retry in its delay tier with its age, and an unreachable endpoint held to one attempt", async () => {
    const tenant = `tenant_${randomBytes(6).toString("hex")}`
    const { key } = await platform.createKey(tenant)
    // A port nothing listens on: bound, then closed.
    const closed = net.createServer().listen(0, "127.0.0.1")
    await once(closed, "listening")
    const deadPort = (closed.address() as net.AddressInfo).port
    await new Promise((r) => closed.close(r))
    receiver.respond("/m-later", () => 500)
    // The retry is due in a minute: it waits in the 30 s tier (the largest not beyond its wait).
    const later = { strategy: "custom", delays_seconds: [60] }
    const before = await scrape(platform.metricsUrl("dispatcher"))
    for (const url of [receiver.url("/m-later"), `https://127.0.0.1:${deadPort}/gone`]) {
      const res = await platform.api("POST", "/api/v1/webhooks", { key, body: { url, events: ["message.delivered"], retry_policy: later, timeout_seconds: 5 } })
      expect(res.status, res.text).toBe(201)
    }
    await platform.publish(tenant, { type: "message.delivered" })

    const seen = await platform.eventually("both retries parked and the unreachable endpoint held to one attempt", async () => {
      const d = await scrape(platform.metricsUrl("dispatcher"))
      return d.value("orbit_retry_backlog_records", { tier: "30s" }) === 2 &&
          d.value("orbit_retry_backlog_oldest_age_seconds", { tier: "30s" }) > 0 &&
          d.value("orbit_endpoints_held_to_one_attempt") === 1
        ? d
        : undefined
    })
    expect({
      http_error: seen.value("orbit_deliveries_total", { outcome: "http_error" }) - before.value("orbit_deliveries_total", { outcome: "http_error" }),
      connect_error: seen.value("orbit_deliveries_total", { outcome: "connect_error" }) - before.value("orbit_deliveries_total", { outcome: "connect_error" }),
      other_tiers: seen.value("orbit_retry_backlog_records") - seen.value("orbit_retry_backlog_records", { tier: "30s" })
    }).toEqual({ http_error: 1, connect_error: 1, other_tiers: 0 })
    expect(seen.value("orbit_consumer_lag_records", { group: "orbit-dispatcher-retry" })).toBe(2)
  })

  it("counts each request refused by the key's rate limit and by the address's key-lookup limit", async () => {
    const tenant = `tenant_${randomBytes(6).toString("hex")}`
    const { key } = await platform.createKey(tenant)
    const before = await scrape(platform.metricsUrl("registration"))

    let limited = 0
    let sent = 0
    while (limited === 0 && sent < RATE_LIMIT_BURST * 20) {
      sent++
      if ((await platform.api("GET", "/api/v1/webhooks", { key })).status === 429) limited++
    }
    expect(limited, `no 429 within ${sent} requests`).toBe(1)
    // Well-formed keys that do not exist, each a lookup, from this one address, until the address is refused twice.
    let refused = 0
    for (let i = 0; refused < 2 && i < KEY_LOOKUP_BURST * 20; i++) {
      const res = await platform.api("GET", "/api/v1/webhooks", { key: generateApiKey({ mode: "live", kind: "secret" }).key })
      if (res.status === 429) refused++
    }
    expect(refused).toBe(2)

    const after = await scrape(platform.metricsUrl("registration"))
    const d = (limit: string) => after.value("orbit_http_rate_limited_total", { limit }) - before.value("orbit_http_rate_limited_total", { limit })
    expect({ tenant: d("tenant"), key_lookup: d("key_lookup") }).toEqual({ tenant: 1, key_lookup: 2 })
    expect(after.value("orbit_http_requests_total", { route: "/api/v1/webhooks", method: "GET", status: "429" }) -
      before.value("orbit_http_requests_total", { route: "/api/v1/webhooks", method: "GET", status: "429" })).toBe(3)
  })

  it.each([["not-a-port"], ["in use"]])("stops the projection at start with one line naming ORBIT_METRICS_PORT when it is %s", async (what) => {
    // The registration's API port is in use for as long as the platform runs.
    const value = what === "in use" ? new URL(platform.baseUrl).port : what
    const child = spawn(process.execPath, serviceArgs("projection"), {
      env: { ...platform.env, ORBIT_DB_SCHEMA: `${platform.id}_bad`, ORBIT_METRICS_PORT: value },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
    const [code] = await once(child, "exit")
    expect(code).toBe(1)
    const line = output.split("\n").find((l) => l.includes("failed to start"))
    expect(line, output).toContain("ORBIT_METRICS_PORT")
    await platform.sql.unsafe(`DROP SCHEMA IF EXISTS "${platform.id}_bad" CASCADE`)
  })
})
