import type { CreateEndpointRequest } from "@orbit/client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

let platform: Platform
beforeAll(async () => {
  platform = await startPlatform()
})
afterAll(() => platform?.close())

const valid: CreateEndpointRequest = { url: "https://hooks.example.com/orbit", events: ["message.delivered"] }

/** Registers one endpoint through the client (which rejects anything but a 201) and returns its id. */
const register = async (key: string) => (await platform.client(key).webhooks.create(valid)).data.id

/**
 * Waits until the list shows every one of `ids`. A 201 normally comes after the projection applied
 * the write, but answers anyway once its wait times out (the event is durable): a paging test
 * waits for what it pages over to be visible rather than assume that wait never timed out.
 */
const waitVisible = (key: string, ids: ReadonlyArray<string>) =>
  platform.waitFor(`${ids.length} endpoints to be listed`, async () => {
    const listed = new Set<string>()
    for await (const e of platform.client(key).webhooks.all({ limit: 200 })) listed.add(e.id)
    return ids.every((id) => listed.has(id))
  })

describe("POST /api/v1/webhooks", () => {
  it("registers an endpoint: 201, envelope, Location, X-Request-Id, generated whsec_ secret", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const res = await platform.api("POST", "/api/v1/webhooks/", { key, body: valid })
    expect(res.status).toBe(201)
    const { data, meta } = res.json
    expect(data.id).toMatch(/^wh_[0-9A-Za-z]{20,}$/)
    expect(data).toMatchObject({
      url: valid.url,
      events: valid.events,
      description: null,
      active: true,
      timeout_seconds: 30,
      retry_policy: { strategy: "custom", delays_seconds: [60, 300, 1800, 7200, 28800, 86400] }
    })
    expect(data.signing_secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    expect(Buffer.from(data.signing_secret.slice(6), "base64").length).toBeGreaterThanOrEqual(24)
    expect(meta.request_id).toMatch(/^req_[A-Za-z0-9_-]{16}$/)
    expect(res.headers.get("x-request-id")).toBe(meta.request_id)
    expect(res.headers.get("location")).toBe(`/api/v1/webhooks/${data.id}`)
    expect(res.headers.get("content-type")).toMatch(/^application\/json/)
    expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(res.text)))
    expect(new Date(meta.timestamp).toISOString()).toBe(meta.timestamp)
  })

  it("keeps a caller-chosen secret and every optional field", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const body = {
      ...valid,
      events: ["*"],
      secret: "my-own-secret-of-24-chars!",
      active: false,
      description: "billing hooks",
      timeout_seconds: 5,
      retry_policy: { strategy: "exponential", max_attempts: 3 }
    }
    const res = await platform.api("POST", "/api/v1/webhooks", { key, body })
    expect(res.status).toBe(201)
    expect(res.json.data).toMatchObject({
      events: ["*"],
      active: false,
      description: "billing hooks",
      timeout_seconds: 5,
      signing_secret: body.secret,
      retry_policy: { strategy: "exponential", max_attempts: 3, initial_delay_seconds: 60, max_delay_seconds: 86400 }
    })
  })

  it("read-your-writes: the list right after a 201 contains the endpoint, without any secret", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    for (let i = 0; i < 5; i++) {
      const created = await platform.api("POST", "/api/v1/webhooks", { key, body: valid })
      expect(created.status).toBe(201)
      const listed = await platform.api("GET", "/api/v1/webhooks", { key })
      expect(listed.status).toBe(200)
      expect(listed.json.data.map((e: { id: string }) => e.id)).toContain(created.json.data.id)
      expect(listed.text).not.toContain(created.json.data.signing_secret)
      expect(listed.text).not.toContain("secret")
    }
  })

  it("Idempotency-Key: a repeat returns the original response and registers once; another body is refused", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const headers = { "idempotency-key": "create-billing-hook-1" }
    const first = await platform.api("POST", "/api/v1/webhooks", { key, body: valid, headers })
    const [second, third] = await Promise.all([
      platform.api("POST", "/api/v1/webhooks", { key, body: valid, headers }),
      platform.api("POST", "/api/v1/webhooks", { key, body: valid, headers })
    ])
    expect(first.status).toBe(201)
    for (const repeat of [second, third]) {
      expect(repeat.status).toBe(201)
      expect(repeat.json.data).toEqual(first.json.data)
    }
    const list = await platform.api("GET", "/api/v1/webhooks", { key })
    expect(list.json.data).toHaveLength(1)

    const other = await platform.api("POST", "/api/v1/webhooks", { key, body: { ...valid, events: ["call.completed"] }, headers })
    expect(other.status).toBe(422)
    expect(other.json.error.code).toBe("VALIDATION_ERROR")
    expect((await platform.api("GET", "/api/v1/webhooks", { key })).json.data).toHaveLength(1)
  })
})

describe("GET /api/v1/webhooks", () => {
  it("HEAD answers like GET, with its headers and without a body", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    await platform.client(key).webhooks.create(valid)
    for (const [path, headers, status] of [
      ["/api/v1/webhooks", { "x-api-key": key }, 200],
      ["/api/v1/webhooks", {}, 401],
      ["/healthz", {}, 200],
      ["/api/v1/openapi.json", {}, 200]
    ] as const) {
      const get = await fetch(`${platform.baseUrl}${path}`, { headers })
      const getBody = await get.text()
      const head = await fetch(`${platform.baseUrl}${path}`, { method: "HEAD", headers })
      expect(head.status, path).toBe(status)
      expect(await head.text(), path).toBe("")
      expect(head.headers.get("content-type"), path).toBe(get.headers.get("content-type"))
      // Same body length as the GET (request ids and timestamps have fixed lengths).
      expect(head.headers.get("content-length"), path).toBe(String(Buffer.byteLength(getBody)))
    }
  })

  it("pages newest first with opaque cursors; cursor is null exactly when has_more is false", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const ids: Array<string> = []
    for (let i = 0; i < 7; i++) ids.push(await register(key))
    await waitVisible(key, ids)
    const seen: Array<string> = []
    let cursor: string | null = null
    let pages = 0
    do {
      const q: string = cursor ? `?limit=3&cursor=${encodeURIComponent(cursor)}` : "?limit=3"
      const res = await platform.api("GET", `/api/v1/webhooks${q}`, { key })
      expect(res.status).toBe(200)
      const { pagination } = res.json.meta
      expect(pagination.cursor === null).toBe(!pagination.has_more)
      seen.push(...res.json.data.map((e: { id: string }) => e.id))
      cursor = pagination.cursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect(seen).toEqual([...ids].reverse())
  })

  it("defaults to 25 per page", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    await waitVisible(key, await Promise.all(Array.from({ length: 27 }, () => register(key))))
    const res = await platform.api("GET", "/api/v1/webhooks", { key })
    expect(res.json.data).toHaveLength(25)
    expect(res.json.meta.pagination.has_more).toBe(true)
  })

  it("walking all pages while endpoints are being created returns every earlier endpoint exactly once", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const before: Array<string> = []
    for (let i = 0; i < 30; i++) before.push(await register(key))
    await waitVisible(key, before)
    // The writer keeps registering until the walk is over; between two pages the walk waits for
    // one more registration to complete, so every page boundary has a write landing in between.
    let inserting = true
    const during: Array<string> = []
    let wake = () => {}
    const writer = (async () => {
      while (inserting) {
        during.push(await register(key))
        wake()
      }
    })()
    const oneMoreWrite = () => {
      const target = during.length + 1
      return new Promise<void>((resolve) => {
        wake = () => during.length >= target && resolve()
        wake()
      })
    }
    const seen: Array<string> = []
    let cursor: string | null = null
    let pages = 0
    do {
      const q: string = cursor ? `?limit=4&cursor=${encodeURIComponent(cursor)}` : "?limit=4"
      const res = await platform.api("GET", `/api/v1/webhooks${q}`, { key })
      expect(res.status, res.text).toBe(200)
      seen.push(...res.json.data.map((e: { id: string }) => e.id))
      cursor = res.json.meta.pagination.cursor
      pages++
      if (cursor) await oneMoreWrite()
    } while (cursor)
    inserting = false
    await writer
    expect(during.length).toBeGreaterThanOrEqual(pages - 1)
    expect(new Set(seen).size).toBe(seen.length)
    // Every endpoint that existed before the walk, once; nothing else but what was written during it.
    expect(seen.filter((id) => before.includes(id)).sort()).toEqual([...before].sort())
    for (const id of seen) expect([...before, ...during]).toContain(id)
  })

  it("refuses cursors that were tampered with or belong to another tenant or mode", async () => {
    const tenant = uniqueTenant()
    const { key } = await platform.createKey(tenant)
    const { key: testKey } = await platform.createKey(tenant, "test")
    const { key: otherKey } = await platform.createKey(uniqueTenant())
    const ids: Array<string> = []
    for (let i = 0; i < 3; i++) ids.push(await register(key))
    await waitVisible(key, ids)
    const cursor: string = (await platform.api("GET", "/api/v1/webhooks?limit=1", { key })).json.meta.pagination.cursor
    expect((await platform.api("GET", `/api/v1/webhooks?cursor=${encodeURIComponent(cursor)}`, { key })).status).toBe(200)
    const [payload, tag] = cursor.split(".")
    const forged = Buffer.from(JSON.stringify(["2999-01-01T00:00:00.000Z", "wh_zzzzzzzzzzzzzzzzzzzzzzzz"])).toString("base64url")
    for (const [bad, k] of [
      [`${forged}.${tag}`, key],
      [`${payload}.${tag}x`, key],
      ["not-a-cursor", key],
      [cursor, otherKey],
      [cursor, testKey]
    ] as const) {
      const res = await platform.api("GET", `/api/v1/webhooks?cursor=${encodeURIComponent(bad)}`, { key: k })
      expect(res.status).toBe(400)
      expect(res.json.error.code).toBe("INVALID_CURSOR")
    }
  })

  it("validates limit: integer 1–200", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    for (const limit of ["0", "201", "-1", "1.5", "abc", ""]) {
      const res = await platform.api("GET", `/api/v1/webhooks?limit=${limit}`, { key })
      expect(res.status, `limit=${limit}`).toBe(422)
      expect(res.json.error.code).toBe("VALIDATION_ERROR")
      expect(res.json.error.details[0].field).toBe("limit")
    }
    for (const limit of ["1", "200"]) {
      expect((await platform.api("GET", `/api/v1/webhooks?limit=${limit}`, { key })).status).toBe(200)
    }
  })
})

describe("GET, PUT, DELETE /api/v1/webhooks/{id}", () => {
  it("reads, replaces and deletes one endpoint; a deleted endpoint is gone at once", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    const created = (await platform.client(key).webhooks.create(valid)).data
    const got = await platform.api("GET", `/api/v1/webhooks/${created.id}`, { key })
    expect(got.status).toBe(200)
    expect(got.json.data.signing_secret).toBeUndefined()
    expect(got.json.data.id).toBe(created.id)

    const put = await platform.api("PUT", `/api/v1/webhooks/${created.id}`, {
      key,
      body: { url: "https://hooks.example.com/v2", events: ["call.completed", "call.failed"], active: false, timeout_seconds: 10 }
    })
    expect(put.status).toBe(200)
    expect(put.json.data).toMatchObject({ url: "https://hooks.example.com/v2", active: false, timeout_seconds: 10 })
    const after = (await platform.api("GET", `/api/v1/webhooks/${created.id}`, { key })).json.data
    expect(after).toEqual(put.json.data)
    expect(after.created_at).toBe(created.created_at)

    const del = await platform.api("DELETE", `/api/v1/webhooks/${created.id}`, { key })
    expect(del.status).toBe(204)
    expect(del.headers.get("x-request-id")).toMatch(/^req_/)
    expect((await platform.api("GET", `/api/v1/webhooks/${created.id}`, { key })).status).toBe(404)
    expect((await platform.api("GET", "/api/v1/webhooks", { key })).json.data).toHaveLength(0)
    expect((await platform.api("DELETE", `/api/v1/webhooks/${created.id}`, { key })).status).toBe(404)
  })

  it("answers 404 for unknown and malformed ids and unknown routes, in the envelope", async () => {
    const { key } = await platform.createKey(uniqueTenant())
    for (const path of ["/api/v1/webhooks/wh_doesnotexist000000000000", "/api/v1/webhooks/nope", "/api/v1/nothing", "/"]) {
      const res = await platform.api("GET", path, { key })
      expect(res.status, path).toBe(404)
      expect(res.json.error.code).toBe("NOT_FOUND")
      expect(res.headers.get("x-request-id")).toBe(res.json.meta.request_id)
    }
  })
})

describe("operability", () => {
  it("serves health, readiness, the OpenAPI document and the reference page", async () => {
    expect((await platform.api("GET", "/healthz")).status).toBe(200)
    // Readiness is probed in the background every second: wait for the writes above to be applied.
    await platform.waitFor("ready", async () => (await platform.api("GET", "/readyz")).status === 200)
    const ready = await platform.api("GET", "/readyz")
    expect(ready.json).toMatchObject({ status: "ready", checks: { postgres: "ok", kafka: "ok", projection_lag: "0" } })
    const spec = await platform.api("GET", "/api/v1/openapi.json")
    expect(spec.json.openapi).toMatch(/^3\./)
    expect(Object.keys(spec.json.paths)).toEqual(expect.arrayContaining(["/api/v1/webhooks", "/api/v1/webhooks/{id}"]))
    expect(JSON.stringify(spec.json)).toContain("timeout_seconds")
    const docs = await fetch(`${platform.baseUrl}/api/v1/docs`)
    expect(docs.headers.get("content-type")).toContain("text/html")
  })
})
