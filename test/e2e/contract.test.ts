/**
 * One declaration of the HTTP contract: every answer a route gives is one its OpenAPI operation
 * lists. Each operation is driven with the valid and hostile inputs of the other e2e files
 * (missing, unknown and read-only keys, malformed and unknown ids, bodies that are not JSON, too
 * large or invalid, refused queries and cursors, an exhausted rate limit), and each observed
 * answer is checked against the served document: its status is one of the operation's responses,
 * an error's `code` is one that response declares, and the body has the declared shape (the
 * handlers write their JSON directly, so this is what keeps them true to the schemas).
 */
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

type JsonSchema = Record<string, any>
type Operation = { responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }> }
type Spec = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, JsonSchema> } }
type Observed = { method: string; template: string; status: number; json: any; headers: Headers; input: string }

const BASE = "/api/v1/webhooks"
const EVENT_TYPES = "/api/v1/event-types"
const valid = { url: "https://hooks.example.com/orbit", events: ["message.delivered"] }
const MISSING_ID = "wh_0000000000000000000000"
const TOO_LARGE = JSON.stringify({ ...valid, description: "x".repeat(64 * 1024) })

let platform: Platform
let spec: Spec
const observed: Array<Observed> = []

beforeAll(async () => {
  // A burst of 30 and one request a second: scenarios stay under it, each on its own key, and
  // one key is exhausted on purpose to see every route's 429.
  platform = await startPlatform({ env: { ORBIT_RATE_LIMIT_PER_SECOND: "1", ORBIT_RATE_LIMIT_BURST: "30" } })
  spec = (await platform.api("GET", "/api/v1/openapi.json")).json
}, 120_000)
afterAll(() => platform?.close())

/** A valid body for a write; reads and DELETE carry none. */
const bodyFor = (method: string) => (method === "GET" || method === "DELETE" ? {} : { body: valid })

const call = async (
  method: string,
  template: string,
  path: string,
  options: Parameters<Platform["api"]>[2] & { input: string } = { input: "valid" }
) => {
  const res = await platform.api(method, path, options)
  observed.push({ method: method.toLowerCase(), template, status: res.status, json: res.json, headers: res.headers, input: options.input })
  return res
}

/** A minimal JSON Schema check of the keywords the generated document uses. */
const conforms = (value: unknown, schema: JsonSchema, at = "$"): Array<string> => {
  if (schema.$ref) return conforms(value, spec.components.schemas[schema.$ref.replace("#/components/schemas/", "")]!, at)
  if (schema.anyOf || schema.oneOf) {
    const branches = (schema.anyOf ?? schema.oneOf) as Array<JsonSchema>
    return branches.some((b) => conforms(value, b, at).length === 0) ? [] : [`${at}: matches none of ${branches.length} alternatives`]
  }
  const problems: Array<string> = []
  if (schema.allOf) for (const s of schema.allOf) problems.push(...conforms(value, s, at))
  if ("const" in schema && value !== schema.const) problems.push(`${at}: ${JSON.stringify(value)} is not ${JSON.stringify(schema.const)}`)
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`)
  if (schema.type) {
    const types = [schema.type].flat() as Array<string>
    const actual = value === null ? "null" : Array.isArray(value) ? "array" : typeof value
    const ok = types.some((t) => t === actual || (t === "integer" && Number.isInteger(value)) || (t === "number" && actual === "number"))
    if (!ok) return [`${at}: ${actual} is not ${types.join("|")}`]
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => problems.push(...conforms(v, schema.items, `${at}[${i}]`)))
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const record = value as Record<string, unknown>
    for (const k of schema.required ?? []) if (!(k in record)) problems.push(`${at}.${k}: missing`)
    for (const [k, v] of Object.entries(record)) {
      if (schema.properties?.[k]) problems.push(...conforms(v, schema.properties[k], `${at}.${k}`))
      else if (schema.additionalProperties === false) problems.push(`${at}.${k}: not declared`)
    }
  }
  return problems
}

describe("every answer is one its OpenAPI operation lists", () => {
  it("drives every operation with valid and hostile inputs", async () => {
    const tenant = uniqueTenant()
    const freshKey = async (kind: "secret" | "public" = "secret") => (await platform.createKey(tenant, "live", kind)).key
    const key = await freshKey()
    const readOnly = await freshKey("public")

    const created = await call("POST", BASE, BASE, { key, body: valid, input: "valid" })
    expect(created.status, created.text).toBe(201)
    const id = created.json.data.id as string
    const doomed = (await call("POST", BASE, BASE, { key, body: valid, input: "valid" })).json.data.id as string
    const one = `${BASE}/{id}`
    // A delivery of the endpoint as the projection records it (the payload of its first attempt),
    // so a retry has something to send; no dispatcher runs here.
    const deliveryId = randomUUID()
    await platform.sql`INSERT INTO delivery_payloads (delivery_id, endpoint_id, tenant_id, mode, source_event_id, source_event_type, body, addressed, occurred_at)
      VALUES (${deliveryId}, ${id}, ${tenant}, 'live', 'evt_contract', 'message.delivered', '{}', false, now())`
    const retryOne = `${one}/deliveries/{delivery_id}/retry`
    const ops: Array<[string, string, string]> = [
      ["GET", BASE, BASE],
      ["POST", BASE, BASE],
      ["GET", one, `${BASE}/${id}`],
      ["PUT", one, `${BASE}/${id}`],
      ["DELETE", one, `${BASE}/${doomed}`],
      ["POST", `${one}/rotate-secret`, `${BASE}/${id}/rotate-secret`],
      ["POST", `${one}/test`, `${BASE}/${id}/test`],
      ["GET", `${one}/deliveries`, `${BASE}/${id}/deliveries`],
      ["GET", `${one}/stats`, `${BASE}/${id}/stats`],
      ["POST", `${one}/recover`, `${BASE}/${id}/recover`],
      ["POST", retryOne, `${BASE}/${id}/deliveries/${deliveryId}/retry`]
    ]

    // Every operation: no key, an unknown key, a read-only key, an id that cannot exist, one that
    // does not, and each hostile body a write can be sent.
    for (const [method, template, path] of ops) {
      const k = await freshKey()
      await call(method, template, path, { input: "no key" })
      await call(method, template, path, { key: "dv_live_sk_unknown", input: "unknown key" })
      await call(method, template, path, { key: readOnly, ...bodyFor(method), input: "read-only key" })
      if (template !== BASE) {
        const [real] = path.slice(BASE.length + 1).split("/")
        await call(method, template, path.replace(real!, "not-an-id"), { key: k, ...bodyFor(method), input: "malformed id" })
        await call(method, template, path.replace(real!, MISSING_ID), { key: k, ...bodyFor(method), input: "unknown id" })
      }
      if (method === "POST" || method === "PUT") {
        await call(method, template, path, { key: k, rawBody: "{", headers: { "content-type": "application/json" }, input: "not JSON" })
        await call(method, template, path, { key: k, rawBody: JSON.stringify(valid), headers: { "content-type": "text/plain" }, input: "not sent as JSON" })
        await call(method, template, path, { key: k, rawBody: TOO_LARGE, headers: { "content-type": "application/json" }, input: "over 64 KiB" })
        await call(method, template, path, { key: k, body: { ...valid, unknown_field: 1 }, input: "unknown field" })
        await call(method, template, path, { key: k, body: { url: 5, events: [] }, input: "invalid body" })
        await call(method, template, path, { key: k, body: { ...valid, url: "http://127.0.0.1/hook" }, input: "forbidden url" })
      }
      if (method === "GET") {
        await call(method, template, path, { key: k, input: "valid" })
        for (const query of ["limit=0", "limit=abc", "unknown=1", "limit=1&limit=2", "cursor=forged"]) {
          await call(method, template, `${path}?${query}`, { key: k, input: query })
        }
      }
    }

    // The operations' own answers: idempotency, update, rotation, the test event, an inactive
    // endpoint, a page with a cursor, and delete.
    const k = await freshKey()
    await call("POST", BASE, BASE, { key: k, body: valid, headers: { "idempotency-key": "contract-1" }, input: "idempotent" })
    await call("POST", BASE, BASE, { key: k, body: valid, headers: { "idempotency-key": "contract-1" }, input: "idempotent replay" })
    await call("POST", BASE, BASE, { key: k, body: { ...valid, description: "other" }, headers: { "idempotency-key": "contract-1" }, input: "idempotency mismatch" })
    await call("POST", BASE, BASE, { key: k, body: valid, headers: { "idempotency-key": "x".repeat(256) }, input: "idempotency key too long" })
    await call("PUT", one, `${BASE}/${id}`, { key: k, body: { ...valid, description: "changed" }, input: "valid" })
    await call("POST", `${one}/rotate-secret`, `${BASE}/${id}/rotate-secret`, { key: k, input: "no body" })
    await call("POST", `${one}/rotate-secret`, `${BASE}/${id}/rotate-secret`, { key: k, body: { grace_period_seconds: 60 }, input: "valid" })
    await call("POST", `${one}/test`, `${BASE}/${id}/test`, { key: k, input: "no body" })
    await call("POST", `${one}/test`, `${BASE}/${id}/test`, { key: k, body: {}, input: "valid" })
    const page = await call("GET", BASE, `${BASE}?limit=1`, { key: k, input: "limit=1" })
    if (page.json?.meta?.pagination?.cursor) {
      await call("GET", BASE, `${BASE}?limit=1&cursor=${encodeURIComponent(page.json.meta.pagination.cursor)}`, { key: k, input: "next page" })
    }
    await call("POST", `${one}/recover`, `${BASE}/${id}/recover`, { key: k, body: { since: new Date(Date.now() - 3600_000).toISOString() }, input: "valid" })
    await call("POST", `${one}/recover`, `${BASE}/${id}/recover`, { key: k, body: { since: new Date(Date.now() - 30 * 86400_000).toISOString() }, input: "window over 14 days" })
    await call("POST", retryOne, `${BASE}/${id}/deliveries/${deliveryId}/retry`, { key: k, input: "no body" })
    await call("POST", retryOne, `${BASE}/${id}/deliveries/${randomUUID()}/retry`, { key: k, input: "unknown delivery" })
    await call("PUT", one, `${BASE}/${id}`, { key: k, body: { ...valid, active: false }, input: "deactivate" })
    await call("POST", `${one}/test`, `${BASE}/${id}/test`, { key: k, body: {}, input: "inactive endpoint" })
    await call("POST", retryOne, `${BASE}/${id}/deliveries/${deliveryId}/retry`, { key: k, body: {}, input: "inactive endpoint" })
    await call("DELETE", one, `${BASE}/${doomed}`, { key: k, input: "valid" })
    await call("GET", one, `${BASE}/${id}`, { key: k, input: "deleted" })

    // The event catalog: any valid key reads it, public ones included; it takes no query.
    {
      const k = await freshKey()
      await call("GET", EVENT_TYPES, EVENT_TYPES, { input: "no key" })
      await call("GET", EVENT_TYPES, EVENT_TYPES, { key: "dv_live_sk_unknown", input: "unknown key" })
      await call("GET", EVENT_TYPES, EVENT_TYPES, { key: readOnly, input: "read-only key" })
      await call("GET", EVENT_TYPES, EVENT_TYPES, { key: k, input: "valid" })
      await call("GET", EVENT_TYPES, `${EVENT_TYPES}?limit=1`, { key: k, input: "limit=1" })
    }

    // One key past its rate limit: every operation answers 429.
    const limited = await freshKey()
    let exhausted = false
    for (let i = 0; i < 200 && !exhausted; i++) {
      exhausted = (await call("GET", BASE, BASE, { key: limited, input: "exhausting the rate limit" })).status === 429
    }
    expect(exhausted, "no 429 within 200 requests at a burst of 30").toBe(true)
    for (const [method, template, path] of ops) await call(method, template, path, { key: limited, ...bodyFor(method), input: "rate limited" })
    await call("GET", EVENT_TYPES, EVENT_TYPES, { key: limited, input: "rate limited" })

    // The keyless operations.
    await call("GET", "/healthz", "/healthz")
    await call("GET", "/readyz", "/readyz")
    await call("GET", "/api/v1/openapi.json", "/api/v1/openapi.json")
    const docs = await fetch(`${platform.baseUrl}/api/v1/docs`)
    await docs.text()
    observed.push({ method: "get", template: "/api/v1/docs", status: docs.status, json: undefined, headers: docs.headers, input: "valid" })
  }, 300_000)

  it("sees every status among the ones the operation lists, with a declared code and body", () => {
    const problems: Array<string> = []
    for (const o of observed) {
      const where = `${o.method.toUpperCase()} ${o.template} (${o.input}) → ${o.status}${o.json?.error ? ` ${o.json.error.code}` : ""}`
      const op = spec.paths[o.template]?.[o.method]
      if (!op) {
        problems.push(`${where}: no such operation in the document`)
        continue
      }
      const response = op.responses[String(o.status)]
      if (!response) {
        problems.push(`${where}: status not listed (lists ${Object.keys(op.responses).join(", ")})`)
        continue
      }
      const schema = response.content?.["application/json"]?.schema
      if (schema) problems.push(...conforms(o.json, schema).map((p) => `${where}: ${p}`))
      else if (o.status !== 204 && o.headers.get("content-type")?.startsWith("application/json")) {
        problems.push(`${where}: a JSON body where the document declares none`)
      }
    }
    expect(problems).toEqual([])
  })

  it("observes, across the inputs, every error status the webhook operations declare but 500 and 503", () => {
    // 500 and 503 need a fault (operability.test.ts causes the 503); everything else is seen here,
    // so a declared status no route can give would show as well.
    const seen = new Set(observed.filter((o) => o.template.startsWith(BASE)).map((o) => `${o.method} ${o.template} ${o.status}`))
    const unseen: Array<string> = []
    for (const [path, item] of Object.entries(spec.paths)) {
      if (!path.startsWith(BASE)) continue
      for (const [method, op] of Object.entries(item)) {
        for (const status of Object.keys(op.responses)) {
          if (status === "500" || status === "503") continue
          if (!seen.has(`${method} ${path} ${status}`)) unseen.push(`${method.toUpperCase()} ${path} ${status}`)
        }
      }
    }
    expect(unseen).toEqual([])
  })

  it("observes every error status the event-types operation declares but 500 and 503", () => {
    const seen = new Set(observed.filter((o) => o.template === EVENT_TYPES).map((o) => o.status))
    const declared = Object.keys(spec.paths[EVENT_TYPES]?.get?.responses ?? {}).map(Number)
    expect(declared).toContain(200)
    expect(declared.filter((s) => s !== 500 && s !== 503 && !seen.has(s))).toEqual([])
  })
})
