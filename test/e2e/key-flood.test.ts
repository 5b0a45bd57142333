/**
 * Unknown-key floods (API.md §1, §2): random well-formed keys barely reach Postgres, a valid key is
 * served throughout, an address out of key lookups gets 429 RATE_LIMITED with Retry-After, and
 * X-Forwarded-For names the address only behind a trusted proxy (ORBIT_TRUST_PROXY). What reached
 * Postgres is read from Postgres itself: the scans of the api_keys table.
 */
import { randomBytes } from "node:crypto"
import { request } from "node:http"
import { generateApiKey } from "@orbit/crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"
import { scrape } from "../src/Scrape.ts"

const BASE = "/api/v1/webhooks"
const BASE62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const randomChars = (n: number) => Array.from(randomBytes(n), (b) => BASE62[b % 62]).join("")
// A small bucket keeps the test short and its bound tight; the defaults only scale it.
const BURST = 20
const RATE = 1

let platform: Platform
beforeAll(async () => {
  platform = await startPlatform({ env: { ORBIT_KEY_LOOKUP_BURST: String(BURST), ORBIT_KEY_LOOKUP_RATE_PER_SECOND: String(RATE) } })
})
afterAll(async () => {
  await platform?.close()
})

type Res = Awaited<ReturnType<Platform["api"]>>

const expectRateLimited = (res: Res) => {
  expect(res.status, res.text).toBe(429)
  expect(res.json.error).toMatchObject({ code: "RATE_LIMITED", status: 429 })
  expect(res.headers.get("retry-after")).toMatch(/^[1-9][0-9]*$/)
  expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
}

/** Unknown keys with valid checksums (each one is looked up if its address may) until one gets 429. */
const exhaust = async (headers: Record<string, string> = {}) => {
  for (let i = 0; i < 10 * BURST; i++) {
    const res = await platform.api("GET", BASE, { key: generateApiKey({ mode: "live", kind: "secret" }).key, headers })
    if (res.status === 429) return res
    expect(res.status, res.text).toBe(401)
  }
  throw new Error(`no 429 after ${10 * BURST} unknown keys`)
}

const restartRegistration = async (env: Record<string, string>) => {
  await platform.stop("registration")
  Object.assign(platform.env, env)
  platform.start("registration")
  await platform.ready()
}

describe("a flood of random well-formed keys", () => {
  it("barely reaches Postgres, while a valid key is answered 200 throughout", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    expect((await platform.api("GET", BASE, { key })).status).toBe(200)
    const before = await platform.tableScans("api_keys")

    // Half with the checksum's length (refused by it), half in the form issued before checksums
    // (looked up while the address has lookups left).
    const flood = Array.from({ length: 3000 }, (_, i) => `dv_live_sk_${randomChars(i % 2 === 0 ? 49 : 43)}`)
    const statuses = { checksummed: new Set<number>(), legacy: new Set<number>() }
    const validStatuses = new Set<number>()
    const started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (next < flood.length) {
        const i = next++
        const res = await platform.api("GET", BASE, { key: flood[i]! })
        statuses[i % 2 === 0 ? "checksummed" : "legacy"].add(res.status)
        if (i % 50 === 0) validStatuses.add((await platform.api("GET", BASE, { key })).status)
      }
    }))
    const seconds = (performance.now() - started) / 1000
    const reached = (await platform.tableScans("api_keys")) - before

    // At most the bucket's burst and refill, and the valid key's refresh once per cache period (2 s).
    const bound = BURST + Math.ceil(seconds * RATE) + Math.ceil(seconds / 2) + 1
    expect(reached, `${reached} of ${flood.length} keys reached Postgres in ${seconds.toFixed(1)} s`).toBeLessThanOrEqual(bound)
    // The checksum refuses its half outright: no lookup, so the address's bucket never answers for them.
    expect([...statuses.checksummed]).toEqual([401])
    expect([...statuses.legacy].sort()).toEqual([401, 429])
    expect([...validStatuses]).toEqual([200])
  })
})

describe("429 RATE_LIMITED per client address", () => {
  it("an address out of key lookups gets 429 with Retry-After in the error envelope; keys it uses are still served", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    expect((await platform.api("GET", BASE, { key })).status).toBe(200)
    const refused = await exhaust()
    expectRateLimited(refused)
    expect(refused.json.error.message).not.toMatch(/key/i)
    // The key this address already uses is known: its reads and writes go on.
    expect((await platform.api("GET", BASE, { key })).status).toBe(200)
    const created = await platform.api("POST", BASE, { key, body: { url: "https://hooks.example.com/orbit", events: ["message.delivered"] } })
    expect(created.status, created.text).toBe(201)
    // A key with a wrong checksum is refused as before: it costs no lookup, so no limit applies.
    expect((await platform.api("GET", BASE, { key: `dv_live_sk_${randomChars(49)}` })).status).toBe(401)
  })

  it("X-Forwarded-For is ignored unless ORBIT_TRUST_PROXY is set; then the proxy's entry (the last) names the address", async () => {
    // Not trusted: the header changes nothing, the socket's address (127.0.0.1) is out of lookups.
    expectRateLimited(await exhaust({ "x-forwarded-for": "198.51.100.1" }))
    const other = await platform.api("GET", BASE, { key: generateApiKey({ mode: "live", kind: "secret" }).key, headers: { "x-forwarded-for": "198.51.100.2" } })
    expectRateLimited(other)

    await restartRegistration({ ORBIT_TRUST_PROXY: "true" })
    expectRateLimited(await exhaust({ "x-forwarded-for": "198.51.100.1" }))
    const unknown = () => generateApiKey({ mode: "live", kind: "secret" }).key
    // Another client behind the proxy has lookups of its own.
    expect((await platform.api("GET", BASE, { key: unknown(), headers: { "x-forwarded-for": "198.51.100.2" } })).status).toBe(401)
    // What the client wrote before the proxy's entry proves nothing.
    expectRateLimited(await platform.api("GET", BASE, { key: unknown(), headers: { "x-forwarded-for": "198.51.100.2, 198.51.100.1" } }))
    expect((await platform.api("GET", BASE, { key: unknown(), headers: { "x-forwarded-for": "198.51.100.1, 198.51.100.3" } })).status).toBe(401)
  })
})

/** One request as written, with its answer's status, headers as sent (names as written) and body. */
const raw = (method: string, path: string, headers: Record<string, string>) =>
  new Promise<{ status: number; headers: Array<[string, string]>; body: string }>((resolve, reject) => {
    const req = request(`${platform.baseUrl}${path}`, { method, headers, agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => {
        const pairs: Array<[string, string]> = []
        for (let i = 0; i < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!])
        resolve({ status: res.statusCode!, headers: pairs, body })
      })
    })
    req.on("error", reject)
    req.end()
  })

/** An answer with what differs per request (its id, its time) blanked, for comparing answers. */
const comparable = (res: Awaited<ReturnType<typeof raw>>) => {
  const id = res.headers.find(([name]) => name === "x-request-id")?.[1]
  expect(id).toMatch(/^req_[A-Za-z0-9_-]{16}$/)
  return {
    status: res.status,
    headers: res.headers.map(([name, value]) => [name, name === "x-request-id" ? "ID" : name === "Date" ? "DATE" : value]),
    body: res.body.replace(id!, "ID").replace(/"timestamp":"[^"]+"/, '"timestamp":"T"')
  }
}

describe("refusals answered before routing (server/EarlyRefusals.ts)", () => {
  it("a key the checksum refuses, and an unknown key from an address out of lookups, are answered by the server itself, as the router answers them", async () => {
    const before = await scrape(platform.metricsUrl("registration"))
    const wrongChecksum = `dv_live_sk_${randomChars(49)}`
    // A request with a body (here empty) is left to the router, which answers the same refusal.
    const routed = comparable(await raw("GET", BASE, { "x-api-key": wrongChecksum, "content-length": "0" }))
    const early = comparable(await raw("GET", BASE, { "x-api-key": wrongChecksum }))
    expect(early.status).toBe(401)
    expect(early.body).toContain('"code":"INVALID_API_KEY"')
    expect(early).toEqual(routed)
    // A HEAD: the same status and headers, Content-Length included, and no body.
    const head = comparable(await raw("HEAD", `${BASE}/ep_unknown/stats`, { "x-api-key": wrongChecksum }))
    expect(head).toEqual({ ...early, body: "" })

    expectRateLimited(await exhaust())
    const unknown = () => `dv_live_sk_${randomChars(43)}`
    const routedLimited = comparable(await raw("GET", BASE, { "x-api-key": unknown(), "content-length": "0" }))
    const earlyLimited = comparable(await raw("GET", BASE, { "x-api-key": unknown() }))
    expect(earlyLimited.status).toBe(429)
    expect(earlyLimited.headers.map(([name]) => name)).toContain("retry-after")
    expect(earlyLimited).toEqual(routedLimited)

    // Counted where the router counts them, and as refused early: the checksum's GET and HEAD; the
    // 429s of `exhaust`'s last key and of the GET without a body (the routed one is not).
    const after = await scrape(platform.metricsUrl("registration"))
    const d = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels)
    expect({
      invalid: d("orbit_http_refused_early_total", { reason: "invalid" }),
      exhausted: d("orbit_http_refused_early_total", { reason: "exhausted" }),
      stats401: d("orbit_http_requests_total", { method: "GET", route: "/api/v1/webhooks/{id}/stats", status: "401" }),
      list429: d("orbit_http_requests_total", { method: "GET", route: BASE, status: "429" })
    }).toEqual({ invalid: 2, exhausted: 2, stats401: 1, list429: 3 })
  })
})
