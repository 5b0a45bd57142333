/**
 * API.md §1: key kinds, 401 that reveals nothing, revocation within 5 s, read-only public keys,
 * tenant and mode isolation — and the `orbit keys` CLI that creates, lists and revokes keys.
 */
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import path from "node:path"
import { generateApiKey } from "@orbit/crypto"
import { Kafka, logLevel } from "@orbit/kafka"
import { brokers } from "../../infra/kafka.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

const ROOT = path.join(import.meta.dirname, "..", "..")
const BASE = "/api/v1/webhooks"
const valid = { url: "https://hooks.example.com/orbit", events: ["message.delivered"] }

let platform: Platform
let kafka: ReturnType<Kafka["admin"]>
beforeAll(async () => {
  platform = await startPlatform()
  kafka = new Kafka({ brokers: brokers(), logLevel: logLevel.NOTHING }).admin()
  await kafka.connect()
})
afterAll(async () => {
  await kafka?.disconnect()
  await platform?.close()
})

type Res = Awaited<ReturnType<Platform["api"]>>

/** Runs the real CLI (`npm run orbit -- …`) against this platform's database. */
const cli = (...args: Array<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, "packages/cli/src/main.ts"), ...args],
      // Bounded only by the test's own timeout: four of these start at once, and on a loaded
      // two-core host one start alone can take tens of seconds.
      { cwd: ROOT, env: platform.env, timeout: 110_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr })
    )
  })

/** The parts of a response that may legitimately differ between two requests. */
const normalized = (res: Res) => {
  const body = structuredClone(res.json)
  delete body.meta.request_id
  delete body.meta.timestamp
  const headers = Object.fromEntries(
    [...res.headers].filter(([name]) => !["date", "x-request-id", "keep-alive", "connection"].includes(name))
  )
  return { status: res.status, body, headers }
}

const expectError = (res: Res, status: number, code: string) => {
  expect(res.status, res.text).toBe(status)
  expect(res.json.error).toMatchObject({ code, status })
  expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
}

const endpointOffsets = async () =>
  (await kafka.fetchTopicOffsets(`${platform.topicPrefix}webhooks.endpoint-events`)).map((o) => `${o.partition}:${o.high}`).sort().join(",")

/** The statuses a key gets on reads, polled until one is 401 (reads may use the key cache). */
const waitForRefusal = async (key: string) => {
  const seen = new Set<number>()
  await platform.waitFor("refusal of the revoked key", async () => {
    const status = (await platform.api("GET", BASE, { key })).status
    seen.add(status)
    return status === 401
  })
  // Until then the key was served as it was: nothing but 200s and the 401.
  expect([...seen].sort()).toEqual(seen.has(200) ? [200, 401] : [401])
}

describe("401 INVALID_API_KEY", () => {
  it("missing, malformed, unknown and revoked keys get identical answers that reveal nothing", async () => {
    const tenant = uniqueTenant()
    const { key: live, keyId } = await platform.createKey(tenant)
    expect((await platform.api("GET", BASE, { key: live })).status).toBe(200)
    await platform.sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${keyId}`
    // Writes check the key in Postgres every time, never the key cache: refused at once.
    expectError(await platform.api("POST", BASE, { key: live, body: valid }), 401, "INVALID_API_KEY")
    await waitForRefusal(live)

    const unknown = generateApiKey({ mode: "live", kind: "secret" }).key
    const { key: valid2 } = await platform.createKey(tenant)
    const variants: Array<[string, Record<string, string>]> = [
      ["missing", {}],
      ["empty", { "x-api-key": "" }],
      ["garbage", { "x-api-key": "not-a-key" }],
      ["too short", { "x-api-key": "dv_live_sk_abc" }],
      ["unknown mode", { "x-api-key": unknown.replace("dv_live_", "dv_prod_") }],
      ["unknown kind", { "x-api-key": unknown.replace("_sk_", "_xk_") }],
      ["well-formed but unknown", { "x-api-key": unknown }],
      ["unknown test key", { "x-api-key": generateApiKey({ mode: "test", kind: "secret" }).key }],
      ["unknown public key", { "x-api-key": generateApiKey({ mode: "live", kind: "public" }).key }],
      ["a real key with one character changed", { "x-api-key": valid2.slice(0, -1) + (valid2.endsWith("A") ? "B" : "A") }],
      ["a real key in upper case", { "x-api-key": valid2.toUpperCase() }],
      ["a real key with its prefix swapped", { "x-api-key": valid2.replace("dv_live_sk_", "dv_test_sk_") }],
      ["a real key as a Bearer token instead", { authorization: `Bearer ${valid2}` }],
      ["a real key in the query string instead", {}],
      ["revoked", { "x-api-key": live }]
    ]
    for (const [method, pathname, body] of [
      ["GET", BASE, undefined],
      ["POST", BASE, valid],
      ["GET", `${BASE}/wh_aaaaaaaaaaaaaaaaaaaaaaaa`, undefined],
      ["PUT", `${BASE}/wh_aaaaaaaaaaaaaaaaaaaaaaaa`, valid],
      ["DELETE", `${BASE}/wh_aaaaaaaaaaaaaaaaaaaaaaaa`, undefined]
    ] as const) {
      const answers = []
      for (const [name, headers] of variants) {
        const target = name.includes("query string") ? `${pathname}?api_key=${valid2}` : pathname
        const res = await platform.api(method, target, { headers, ...(body ? { body } : {}) })
        expectError(res, 401, "INVALID_API_KEY")
        expect(res.json.error.details, name).toBeUndefined()
        answers.push([name, normalized(res)] as const)
      }
      for (const [name, answer] of answers) expect(answer, `${method} ${pathname}: ${name}`).toEqual(answers[0]![1])
    }
    // The key that was not revoked still works: the 401s were about the keys.
    expect((await platform.api("GET", BASE, { key: valid2 })).status).toBe(200)
  })
})

describe("403 INSUFFICIENT_PERMISSIONS for public keys", () => {
  it("a public key reads but cannot write, and its attempts change nothing", async () => {
    const tenant = uniqueTenant()
    const { key: secret } = await platform.createKey(tenant)
    const { key: pub } = await platform.createKey(tenant, "live", "public")
    const created = await platform.api("POST", BASE, { key: secret, body: valid })
    expect(created.status).toBe(201)
    const id = created.json.data.id

    const list = await platform.api("GET", BASE, { key: pub })
    expect(list.status).toBe(200)
    expect(list.json.data.map((e: { id: string }) => e.id)).toEqual([id])
    const one = await platform.api("GET", `${BASE}/${id}`, { key: pub })
    expect(one.status).toBe(200)
    expect(one.json.data.signing_secret).toBeUndefined()
    const before = one.json.data
    const offsets = await endpointOffsets()

    for (const [method, pathname, body] of [
      ["POST", BASE, valid],
      ["POST", BASE, { nonsense: true }], // permission is checked before the body: nothing to learn
      ["PUT", `${BASE}/${id}`, { ...valid, url: "https://evil.example.com/" }],
      ["PUT", `${BASE}/wh_doesnotexist000000000000`, valid],
      ["DELETE", `${BASE}/${id}`, undefined],
      ["DELETE", `${BASE}/wh_doesnotexist000000000000`, undefined]
    ] as const) {
      const res = await platform.api(method, pathname, { key: pub, ...(body ? { body } : {}) })
      expectError(res, 403, "INSUFFICIENT_PERMISSIONS")
    }
    expect((await platform.api("POST", BASE, { key: pub, body: valid, headers: { "idempotency-key": "pk-1" } })).status).toBe(403)

    expect(await endpointOffsets()).toBe(offsets)
    const after = await platform.api("GET", BASE, { key: secret })
    expect(after.json.data).toEqual([before])
    // The Idempotency-Key the public key tried was not spent.
    const retry = await platform.api("POST", BASE, { key: secret, body: valid, headers: { "idempotency-key": "pk-1" } })
    expect(retry.status).toBe(201)
  })
})

describe("tenant isolation", () => {
  it("tenant B cannot see, read, replace or delete tenant A's endpoint: 404 exactly like a non-existent id", async () => {
    const { key: a } = await platform.createKey(uniqueTenant())
    const tenantB = uniqueTenant()
    const { key: b } = await platform.createKey(tenantB)
    const { key: bPublic } = await platform.createKey(tenantB, "live", "public")
    const created = await platform.api("POST", BASE, { key: a, body: { ...valid, description: "A's" } })
    expect(created.status).toBe(201)
    const id = created.json.data.id
    const before = (await platform.api("GET", `${BASE}/${id}`, { key: a })).json.data
    const own = await platform.api("POST", BASE, { key: b, body: valid })
    expect(own.status).toBe(201)

    const listB = await platform.api("GET", `${BASE}?limit=200`, { key: b })
    expect(listB.json.data.map((e: { id: string }) => e.id)).toEqual([own.json.data.id])
    expect(listB.text).not.toContain(id)
    expect((await platform.api("GET", `${BASE}?limit=200`, { key: bPublic })).json.data.map((e: { id: string }) => e.id)).toEqual([
      own.json.data.id
    ])

    const missing = "wh_doesnotexist000000000000"
    for (const [method, body, k] of [
      ["GET", undefined, b],
      ["GET", undefined, bPublic],
      ["PUT", { ...valid, url: "https://takeover.example.com/" }, b],
      ["DELETE", undefined, b]
    ] as const) {
      const theirs = await platform.api(method, `${BASE}/${id}`, { key: k, ...(body ? { body } : {}) })
      const none = await platform.api(method, `${BASE}/${missing}`, { key: k, ...(body ? { body } : {}) })
      expectError(theirs, 404, "NOT_FOUND")
      expect(normalized(theirs), method).toEqual(normalized(none))
    }

    const after = await platform.api("GET", `${BASE}/${id}`, { key: a })
    expect(after.status).toBe(200)
    expect(after.json.data).toEqual(before)
    expect((await platform.api("GET", BASE, { key: a })).json.data).toEqual([before])
  })

  it("two keys of the same tenant and mode share its endpoints (scope is the tenant, not the key)", async () => {
    const tenant = uniqueTenant()
    const { key: k1 } = await platform.createKey(tenant)
    const { key: k2 } = await platform.createKey(tenant)
    const created = (await platform.api("POST", BASE, { key: k1, body: valid })).json.data
    expect((await platform.api("GET", `${BASE}/${created.id}`, { key: k2 })).status).toBe(200)
    expect((await platform.api("DELETE", `${BASE}/${created.id}`, { key: k2 })).status).toBe(204)
    expect((await platform.api("GET", BASE, { key: k1 })).json.data).toEqual([])
  })
})

describe("mode isolation", () => {
  it("test-key endpoints are invisible to the same tenant's live keys, and vice versa", async () => {
    const tenant = uniqueTenant()
    const { key: live } = await platform.createKey(tenant, "live")
    const { key: test } = await platform.createKey(tenant, "test")
    const { key: livePublic } = await platform.createKey(tenant, "live", "public")
    const { key: testPublic } = await platform.createKey(tenant, "test", "public")
    const liveEp = (await platform.api("POST", BASE, { key: live, body: { ...valid, description: "live" } })).json.data
    const testEp = (await platform.api("POST", BASE, { key: test, body: { ...valid, description: "test" } })).json.data
    expect(liveEp.id).toMatch(/^wh_/)
    expect(testEp.id).toMatch(/^wh_/)

    const ids = async (k: string) => (await platform.api("GET", `${BASE}?limit=200`, { key: k })).json.data.map((e: { id: string }) => e.id)
    expect(await ids(live)).toEqual([liveEp.id])
    expect(await ids(livePublic)).toEqual([liveEp.id])
    expect(await ids(test)).toEqual([testEp.id])
    expect(await ids(testPublic)).toEqual([testEp.id])

    for (const [k, otherId] of [[live, testEp.id], [livePublic, testEp.id], [test, liveEp.id], [testPublic, liveEp.id]] as const) {
      expectError(await platform.api("GET", `${BASE}/${otherId}`, { key: k }), 404, "NOT_FOUND")
    }
    for (const [k, otherId] of [[live, testEp.id], [test, liveEp.id]] as const) {
      expectError(await platform.api("PUT", `${BASE}/${otherId}`, { key: k, body: valid }), 404, "NOT_FOUND")
      expectError(await platform.api("DELETE", `${BASE}/${otherId}`, { key: k }), 404, "NOT_FOUND")
    }
    expectError(await platform.api("POST", BASE, { key: testPublic, body: valid }), 403, "INSUFFICIENT_PERMISSIONS")

    // Both survived the other mode's attempts, unchanged.
    expect((await platform.api("GET", `${BASE}/${liveEp.id}`, { key: live })).json.data.description).toBe("live")
    expect((await platform.api("GET", `${BASE}/${testEp.id}`, { key: test })).json.data.description).toBe("test")
    // Idempotency keys are scoped by mode too: the same key in the other mode registers anew.
    const headers = { "idempotency-key": "same-key-both-modes" }
    const l = await platform.api("POST", BASE, { key: live, body: valid, headers })
    const t = await platform.api("POST", BASE, { key: test, body: valid, headers })
    expect([l.status, t.status]).toEqual([201, 201])
    expect(l.json.data.id).not.toBe(t.json.data.id)
  })
})

describe("the orbit keys CLI", () => {
  const tenant = uniqueTenant()
  const created: Record<string, string> = {}

  it("keys create prints only the new key on stdout, with the prefix for its mode and kind", async () => {
    const runs = await Promise.all(
      ([
        ["live", [], /^dv_live_sk_[A-Za-z0-9]{32,}$/],
        ["test", ["--mode", "test"], /^dv_test_sk_[A-Za-z0-9]{32,}$/],
        ["public", ["--public"], /^dv_live_pk_[A-Za-z0-9]{32,}$/],
        ["testPublic", ["--mode", "test", "--public"], /^dv_test_pk_[A-Za-z0-9]{32,}$/]
      ] as const).map(async ([name, args, pattern]) => ({ name, pattern, r: await cli("keys", "create", "--tenant", tenant, ...args) }))
    )
    for (const { name, pattern, r } of runs) {
      expect(r.code, r.stderr).toBe(0)
      const lines = r.stdout.split("\n")
      expect(lines).toHaveLength(2) // the key, then the final newline
      expect(lines[1]).toBe("")
      expect(lines[0]).toMatch(pattern)
      created[name] = lines[0]!
    }
    expect(new Set(Object.values(created)).size).toBe(4)
  })

  it("the created keys work against the API with their kind and mode", async () => {
    const write = (k: string) => platform.api("POST", BASE, { key: k, body: valid })
    const liveEp = await write(created.live!)
    expect(liveEp.status).toBe(201)
    const testEp = await write(created.test!)
    expect(testEp.status).toBe(201)
    expectError(await write(created.public!), 403, "INSUFFICIENT_PERMISSIONS")
    expectError(await write(created.testPublic!), 403, "INSUFFICIENT_PERMISSIONS")
    const ids = async (k: string) => (await platform.api("GET", BASE, { key: k })).json.data.map((e: { id: string }) => e.id)
    expect(await ids(created.public!)).toEqual([liveEp.json.data.id])
    expect(await ids(created.testPublic!)).toEqual([testEp.json.data.id])
  })

  it("stores only SHA-256 hashes; keys list shows every key without the cleartext", async () => {
    const rows = await platform.sql<Array<{ key_hash: string }>>`SELECT * FROM api_keys WHERE tenant_id = ${tenant}`
    expect(rows).toHaveLength(4)
    const dump = JSON.stringify(rows)
    for (const k of Object.values(created)) {
      expect(dump).not.toContain(k)
      expect(rows.map((r) => r.key_hash)).toContain(createHash("sha256").update(k).digest("hex"))
    }

    const [r, other] = await Promise.all([cli("keys", "list", "--tenant", tenant), cli("keys", "list", "--tenant", uniqueTenant())])
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trim().split("\n")
    expect(lines).toHaveLength(4)
    for (const k of Object.values(created)) {
      expect(r.stdout).not.toContain(k)
      expect(r.stdout).not.toContain(k.slice(12)) // not even the random part
    }
    for (const line of lines) expect(line).toMatch(/^key_\S+\t.*\bactive$/)
    for (const [name, mode, kind] of [["live", "live", "secret"], ["test", "test", "secret"], ["public", "live", "public"], ["testPublic", "test", "public"]]) {
      const prefix = created[name]!.slice(0, 15)
      expect(lines.filter((l) => l.includes(prefix) && l.includes(`\t${mode}\t`) && l.includes(`\t${kind}\t`)), name).toHaveLength(1)
    }
    expect(other.code).toBe(0)
    expect(other.stdout).toBe("")
  })

  it("keys revoke: writes are refused at once, reads once the key cache lets go; answers like an unknown key; listed as revoked", async () => {
    const k = created.live!
    expect((await platform.api("GET", BASE, { key: k })).status).toBe(200) // now cached, if the API caches
    const hash = createHash("sha256").update(k).digest("hex")
    const [{ id: keyId }] = await platform.sql<Array<{ id: string }>>`SELECT id FROM api_keys WHERE key_hash = ${hash}`
    expect(keyId).toMatch(/^key_/)

    const revoke = await cli("keys", "revoke", keyId)
    expect(revoke.code, revoke.stderr).toBe(0)
    // Writes check the key in Postgres every time: refused as soon as the revocation is committed.
    expectError(await platform.api("POST", BASE, { key: k, body: valid }), 401, "INVALID_API_KEY")
    // Reads may be answered from the key cache for a while: refused once its entry is gone.
    await waitForRefusal(k)

    const revokedRes = await platform.api("POST", BASE, { key: k, body: valid })
    const unknownRes = await platform.api("POST", BASE, { key: generateApiKey({ mode: "live", kind: "secret" }).key, body: valid })
    expectError(revokedRes, 401, "INVALID_API_KEY")
    expect(normalized(revokedRes)).toEqual(normalized(unknownRes))
    // Still refused later (no cache flip-flop). "Later" is shown by a sentinel rather than a sleep: a
    // key used (so cached) after that refusal, then revoked, is refused on reads only once its own
    // cache entry is gone, and so is every entry made before it, the revoked key's 401 included.
    const { key: sentinel, keyId: sentinelId } = await platform.createKey(uniqueTenant())
    expect((await platform.api("GET", BASE, { key: sentinel })).status).toBe(200)
    await platform.sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${sentinelId}`
    await waitForRefusal(sentinel)
    expect((await platform.api("GET", BASE, { key: k })).status).toBe(401)
    expect((await platform.api("GET", BASE, { key: created.test! })).status).toBe(200)

    // Listed as revoked; revoking again is harmless (and keeps the first revocation time).
    const [list, again] = await Promise.all([cli("keys", "list", "--tenant", tenant), cli("keys", "revoke", keyId)])
    const after = list.stdout.split("\n")
    expect(after.find((l) => l.startsWith(`${keyId}\t`))).toMatch(/\trevoked \d{4}-\d\d-\d\dT/)
    expect(after.filter((l) => l.endsWith("\tactive"))).toHaveLength(3)
    expect(again.code, again.stderr).toBe(0)
  })

  it("refuses bad arguments with a non-zero exit, a clear message on stderr, and nothing on stdout", async () => {
    const before = (await platform.sql`SELECT count(*)::int AS n FROM api_keys`)[0]!.n
    const cases = [
      [["keys", "create", "--tenant", tenant, "--mode", "prod"], /--mode/],
      [["keys", "create"], /--tenant/],
      [["keys", "create", "--tenant", tenant, "--bogus"], /bogus|unknown/i],
      [["keys", "revoke", "key_doesnotexist0000000000"], /no key/],
      [["keys", "destroy"], /unknown command/]
    ] as const
    const runs = await Promise.all(cases.map(([args]) => cli(...args)))
    cases.forEach(([args, mentions], i) => {
      const r = runs[i]!
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).not.toBe(0)
      expect(r.stdout, args.join(" ")).toBe("")
      expect(r.stderr, args.join(" ")).toMatch(mentions)
      expect(r.stderr).not.toMatch(/\n\s+at .*\.(ts|js):\d+/) // a message, not a stack trace
    })
    expect((await platform.sql`SELECT count(*)::int AS n FROM api_keys`)[0]!.n).toBe(before)
  })
})
