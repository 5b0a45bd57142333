/**
 * Unknown-key floods (API.md §1, §2): random well-formed keys barely reach Postgres, a valid key is
 * served throughout, an address out of key lookups gets 429 RATE_LIMITED with Retry-After, and
 * X-Forwarded-For names the address only behind a trusted proxy (ORBIT_TRUST_PROXY). What reached
 * Postgres is read from Postgres itself: the scans of the api_keys table.
 */
import { randomBytes } from "node:crypto"
import { generateApiKey } from "@orbit/crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

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
