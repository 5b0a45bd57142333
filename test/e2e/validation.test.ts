/**
 * API.md §2–§5: every validation rule and error code for the bodies of POST and PUT and the
 * list query, the error envelope, the 64 KiB limit, and that bad input changes nothing.
 */
import http from "node:http"
import net from "node:net"
import { Kafka, logLevel } from "@orbit/kafka"
import { brokers } from "../../infra/kafka.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Platform, startPlatform, uniqueTenant } from "../src/Platform.ts"

let platform: Platform
let key: string
beforeAll(async () => {
  platform = await startPlatform()
  key = (await platform.createKey(uniqueTenant())).key
})
afterAll(() => platform?.close())

type Res = Awaited<ReturnType<Platform["api"]>>

const BASE = "/api/v1/webhooks"
const valid = { url: "https://hooks.example.com/orbit", events: ["message.delivered"] } as const
const MAX_BODY = 64 * 1024

/** Asserts the error envelope of API.md §2 and returns `error.details` (or []). */
const expectError = (res: Res, status: number, code: string) => {
  expect(res.status, res.text).toBe(status)
  expect(res.headers.get("content-type") ?? "(no content-type)", res.text).toMatch(/^application\/json/)
  expect(Object.keys(res.json).sort()).toEqual(["error", "meta"])
  const { error, meta } = res.json
  expect(error.code).toBe(code)
  expect(error.status).toBe(status)
  expect(typeof error.message).toBe("string")
  expect(error.message.length).toBeGreaterThan(0)
  expect(Object.keys(error).every((k) => ["code", "message", "status", "details"].includes(k))).toBe(true)
  expect(meta.request_id).toMatch(/^req_[A-Za-z0-9_-]{16}$/)
  expect(new Date(meta.timestamp).toISOString()).toBe(meta.timestamp)
  expect(res.headers.get("x-request-id")).toBe(meta.request_id)
  expect(res.text).not.toMatch(/\bat .*\.(ts|js):\d+/) // no stack traces
  const details: Array<{ field: string; value?: unknown; expected: string }> = error.details ?? []
  for (const d of details) {
    expect(typeof d.field).toBe("string")
    expect(typeof d.expected).toBe("string")
  }
  return details
}

const post = (body: unknown, k = key) => platform.api("POST", BASE, { key: k, body })
const postRaw = (rawBody: string, contentType: string | undefined, k = key) =>
  platform.api("POST", BASE, { key: k, rawBody, headers: contentType === undefined ? {} : { "content-type": contentType } })

const without = (field: keyof typeof valid) => {
  const { [field]: _omitted, ...rest } = valid
  return rest
}

/** Sends a raw request with node:http so the body can be streamed (chunked, no Content-Length). */
const streamed = (
  method: string,
  pathname: string,
  chunks: Iterable<string>,
  headers: Record<string, string>
): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: any }> =>
  new Promise((resolve, reject) => {
    const url = new URL(platform.baseUrl)
    const req = http.request(
      { host: url.hostname, port: url.port, path: pathname, method, headers: { ...headers, "transfer-encoding": "chunked" } },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (c: string) => (text += c))
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, json: text ? JSON.parse(text) : undefined }))
      }
    )
    // The server may answer 413 and close before the whole body is sent.
    req.on("error", reject)
    for (const chunk of chunks) req.write(chunk)
    req.end()
  })

/**
 * Each case: a body, the expected code, and the exact `details[].field`s (for VALIDATION_ERROR).
 * Where the contract would allow either code (a URL the schema already refuses), the case names
 * the one the API gives, so a change of answer is seen.
 */
interface Case {
  readonly name: string
  readonly body: unknown
  readonly code?: "VALIDATION_ERROR" | "INVALID_WEBHOOK_URL"
  readonly fields?: ReadonlyArray<string>
  /** A substring of `details[0].expected` that names the bound that was broken. */
  readonly mentions?: string
}

const urlOf = (length: number) => {
  const head = "https://hooks.example.com/"
  return head + "a".repeat(length - head.length)
}

const bodyCases: ReadonlyArray<Case> = [
  // required fields
  { name: "empty object", body: {}, fields: ["url", "events"] },
  { name: "missing url", body: without("url"), fields: ["url"] },
  { name: "missing events", body: without("events"), fields: ["events"] },
  // url
  { name: "url not a string (number)", body: { ...valid, url: 443 }, fields: ["url"] },
  { name: "url not a string (object)", body: { ...valid, url: { href: "https://a.example.com/" } }, fields: ["url"] },
  { name: "url null", body: { ...valid, url: null }, fields: ["url"] },
  { name: "url empty", body: { ...valid, url: "" }, fields: ["url"] },
  { name: "url of 2049 chars", body: { ...valid, url: urlOf(2049) }, fields: ["url"] },
  { name: "url relative", body: { ...valid, url: "/hooks/orbit" }, code: "INVALID_WEBHOOK_URL" },
  { name: "url without scheme", body: { ...valid, url: "hooks.example.com/orbit" }, code: "INVALID_WEBHOOK_URL" },
  { name: "url http:// (insecure http is off by default)", body: { ...valid, url: "http://hooks.example.com/orbit" }, code: "INVALID_WEBHOOK_URL" },
  { name: "url ftp://", body: { ...valid, url: "ftp://hooks.example.com/orbit" }, code: "INVALID_WEBHOOK_URL" },
  { name: "url with user:password", body: { ...valid, url: "https://user:pw@hooks.example.com/" }, code: "INVALID_WEBHOOK_URL" },
  { name: "url with user only", body: { ...valid, url: "https://user@hooks.example.com/" }, code: "INVALID_WEBHOOK_URL" },
  { name: "url with a space", body: { ...valid, url: "https://hooks.example.com/a b" }, code: "INVALID_WEBHOOK_URL" },
  { name: "url with a NUL", body: { ...valid, url: "https://hooks.example.com/\u0000" }, fields: ["url"] },
  // events
  { name: "events empty", body: { ...valid, events: [] }, fields: ["events"], mentions: "1" },
  { name: "events > 100", body: { ...valid, events: Array<string>(101).fill("message.sent") }, fields: ["events"], mentions: "100" },
  { name: "events with duplicates", body: { ...valid, events: ["message.sent", "call.failed", "message.sent"] }, fields: ["events"] },
  { name: "events with an unknown name", body: { ...valid, events: ["message.sent", "message.exploded"] }, fields: ["events[1]"] },
  { name: "events with a wrong-case name", body: { ...valid, events: ["Message.Sent"] }, fields: ["events[0]"] },
  { name: "events \"*\" mixed with others", body: { ...valid, events: ["*", "message.sent"] }, fields: ["events"] },
  { name: "events not an array (string)", body: { ...valid, events: "message.sent" }, fields: ["events"] },
  { name: "events not an array (object)", body: { ...valid, events: { 0: "message.sent" } }, fields: ["events"] },
  { name: "events with a non-string", body: { ...valid, events: [42] }, fields: ["events[0]"] },
  // secret
  { name: "secret of 23 chars", body: { ...valid, secret: "s".repeat(23) }, fields: ["secret"] },
  { name: "secret of 129 chars", body: { ...valid, secret: "s".repeat(129) }, fields: ["secret"] },
  { name: "secret not a string", body: { ...valid, secret: 123456789012345678901234567890 }, fields: ["secret"] },
  // active
  { name: "active \"true\"", body: { ...valid, active: "true" }, fields: ["active"] },
  { name: "active 1", body: { ...valid, active: 1 }, fields: ["active"] },
  { name: "active null", body: { ...valid, active: null }, fields: ["active"] },
  // description
  { name: "description of 513 chars", body: { ...valid, description: "d".repeat(513) }, fields: ["description"] },
  { name: "description not a string", body: { ...valid, description: 7 }, fields: ["description"] },
  // Postgres cannot store U+0000; an unpaired surrogate would be stored as U+FFFD.
  { name: "description with a NUL character", body: { ...valid, description: "a\u0000b" }, fields: ["description"] },
  { name: "description with an unpaired surrogate", body: { ...valid, description: "a\ud800b" }, fields: ["description"] },
  // timeout_seconds
  { name: "timeout_seconds 0", body: { ...valid, timeout_seconds: 0 }, fields: ["timeout_seconds"] },
  { name: "timeout_seconds 31", body: { ...valid, timeout_seconds: 31 }, fields: ["timeout_seconds"] },
  { name: "timeout_seconds -5", body: { ...valid, timeout_seconds: -5 }, fields: ["timeout_seconds"] },
  { name: "timeout_seconds 1.5", body: { ...valid, timeout_seconds: 1.5 }, fields: ["timeout_seconds"] },
  { name: "timeout_seconds \"5\"", body: { ...valid, timeout_seconds: "5" }, fields: ["timeout_seconds"] },
  { name: "timeout_seconds null", body: { ...valid, timeout_seconds: null }, fields: ["timeout_seconds"] },
  // retry_policy: exponential
  ...(
    [
      [{ max_attempts: 0 }, "retry_policy.max_attempts"],
      [{ max_attempts: 11 }, "retry_policy.max_attempts"],
      [{ max_attempts: 2.5 }, "retry_policy.max_attempts"],
      [{ max_attempts: 3, initial_delay_seconds: 0 }, "retry_policy.initial_delay_seconds"],
      [{ max_attempts: 3, initial_delay_seconds: 3601 }, "retry_policy.initial_delay_seconds"],
      [{ max_attempts: 3, max_delay_seconds: 0 }, "retry_policy.max_delay_seconds"],
      [{ max_attempts: 3, max_delay_seconds: 86401 }, "retry_policy.max_delay_seconds"],
      [{}, "retry_policy.max_attempts"]
    ] as const
  ).map(([policy, field]): Case => ({
    name: `exponential ${JSON.stringify(policy)}`,
    body: { ...valid, retry_policy: { strategy: "exponential", ...policy } },
    fields: [field]
  })),
  // retry_policy: fixed
  ...(
    [
      [{ max_attempts: 3, delay_seconds: 0 }, "retry_policy.delay_seconds"],
      [{ max_attempts: 3, delay_seconds: 86401 }, "retry_policy.delay_seconds"],
      [{ max_attempts: 0, delay_seconds: 10 }, "retry_policy.max_attempts"],
      [{ max_attempts: 11, delay_seconds: 10 }, "retry_policy.max_attempts"],
      [{ max_attempts: 3 }, "retry_policy.delay_seconds"]
    ] as const
  ).map(([policy, field]): Case => ({
    name: `fixed ${JSON.stringify(policy)}`,
    body: { ...valid, retry_policy: { strategy: "fixed", ...policy } },
    fields: [field]
  })),
  // retry_policy: custom
  {
    name: "custom with 10 delays",
    body: { ...valid, retry_policy: { strategy: "custom", delays_seconds: Array<number>(10).fill(60) } },
    fields: ["retry_policy.delays_seconds"],
    mentions: "9"
  },
  { name: "custom with a 0 delay", body: { ...valid, retry_policy: { strategy: "custom", delays_seconds: [60, 0] } }, fields: ["retry_policy.delays_seconds[1]"] },
  { name: "custom with 86401", body: { ...valid, retry_policy: { strategy: "custom", delays_seconds: [86401] } }, fields: ["retry_policy.delays_seconds[0]"] },
  { name: "custom with a non-integer", body: { ...valid, retry_policy: { strategy: "custom", delays_seconds: [1.5, 60] } }, fields: ["retry_policy.delays_seconds[0]"] },
  { name: "custom with a string delay", body: { ...valid, retry_policy: { strategy: "custom", delays_seconds: ["60"] } }, fields: ["retry_policy.delays_seconds[0]"] },
  { name: "custom without delays", body: { ...valid, retry_policy: { strategy: "custom" } }, fields: ["retry_policy.delays_seconds"] },
  { name: "unknown strategy", body: { ...valid, retry_policy: { strategy: "linear", max_attempts: 3 } }, fields: ["retry_policy"] },
  { name: "retry_policy without strategy", body: { ...valid, retry_policy: { max_attempts: 3 } }, fields: ["retry_policy"] },
  { name: "retry_policy not an object", body: { ...valid, retry_policy: "exponential" }, fields: ["retry_policy"] },
  // headers: one detail per bad entry
  ...[
    "Host", "content-length", "Content-Type", "Transfer-Encoding", "connection", "User-Agent", "traceparent",
    "X-Devotel-Signature", "x-devotel-anything", "Webhook-Id", "webhook-whatever"
  ].map((name): Case => ({ name: `headers with the reserved name ${name}`, body: { ...valid, headers: { [name]: "v" } }, fields: [`headers.${name}`] })),
  { name: "headers with a space in a name", body: { ...valid, headers: { "X Bad": "v" } }, fields: ["headers.X Bad"], mentions: "RFC 9110" },
  { name: "headers with a colon in a name", body: { ...valid, headers: { "X-Bad:": "v" } }, fields: ["headers.X-Bad:"] },
  { name: "headers with an empty name", body: { ...valid, headers: { "": "v" } }, fields: ["headers."] },
  { name: "headers with a non-ASCII name", body: { ...valid, headers: { "X-Café": "v" } }, fields: ["headers.X-Café"] },
  { name: "headers with a name of 65 chars", body: { ...valid, headers: { ["X".repeat(65)]: "v" } }, fields: [`headers.${"X".repeat(65)}`], mentions: "64" },
  { name: "headers with CR LF in a value", body: { ...valid, headers: { "X-A": "a\r\nX-Injected: 1" } }, fields: ["headers.X-A"], mentions: "LF" },
  { name: "headers with LF in a value", body: { ...valid, headers: { "X-A": "a\nb" } }, fields: ["headers.X-A"] },
  { name: "headers with a tab in a value", body: { ...valid, headers: { "X-A": "a\tb" } }, fields: ["headers.X-A"] },
  { name: "headers with a non-ASCII value", body: { ...valid, headers: { "X-A": "café" } }, fields: ["headers.X-A"] },
  { name: "headers with a value of 1025 chars", body: { ...valid, headers: { "X-A": "v".repeat(1025) } }, fields: ["headers.X-A"], mentions: "1024" },
  { name: "headers with a non-string value", body: { ...valid, headers: { "X-A": 1 } }, fields: ["headers.X-A"] },
  { name: "headers naming one header twice in two cases", body: { ...valid, headers: { "X-A": "1", "x-a": "2" } }, fields: ["headers.x-a"] },
  {
    name: "headers with 21 entries",
    body: { ...valid, headers: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`X-H${i}`, "v"])) },
    fields: ["headers"],
    mentions: "20"
  },
  { name: "headers not an object", body: { ...valid, headers: ["X-A: 1"] }, fields: ["headers"] },
  { name: "headers null", body: { ...valid, headers: null }, fields: ["headers"] },
  {
    name: "headers with three bad entries and a good one: three details",
    body: { ...valid, headers: { Host: "h", "X-Ok": "fine", "X A": "v", "X-B": "a\nb" } },
    fields: ["headers.Host", "headers.X A", "headers.X-B"]
  },
  // strictness
  { name: "unknown top-level field", body: { ...valid, callback_url: "https://x.example.com/" }, fields: ["callback_url"] },
  { name: "misspelt field", body: { ...valid, timeout_second: 5 }, fields: ["timeout_second"] },
  {
    name: "unknown field inside retry_policy",
    body: { ...valid, retry_policy: { strategy: "fixed", max_attempts: 3, delay_seconds: 10, jitter: true } },
    fields: ["retry_policy.jitter"]
  },
  // not an object
  { name: "JSON array", body: [valid], fields: ["body"] },
  { name: "JSON string", body: "https://hooks.example.com/", fields: ["body"] },
  { name: "JSON null", body: null, fields: ["body"] },
  { name: "JSON number", body: 42, fields: ["body"] },
  { name: "JSON boolean", body: true, fields: ["body"] }
]

const expectCase = (res: Res, c: Case) => {
  expect(res.status, `${c.name}: ${res.text}`).toBe(422)
  expect(res.json.error.code, c.name).toBe(c.code ?? "VALIDATION_ERROR")
  const details = expectError(res, 422, c.code ?? "VALIDATION_ERROR")
  if (res.json.error.code === "INVALID_WEBHOOK_URL") {
    expect(details.map((d) => d.field)).toEqual(["url"])
    return
  }
  if (c.fields) expect(details.map((d) => d.field), c.name).toEqual(c.fields)
  if (c.mentions) expect(details[0]!.expected).toContain(c.mentions)
}

describe("POST /api/v1/webhooks body validation", () => {
  it.each(bodyCases.map((c) => [c.name, c] as const))("%s → 422", async (_name, c) => {
    expectCase(await post(c.body), c)
  })

  it("accepts every boundary value (so the refusals above are the bounds, not something else)", async () => {
    const bodies = [
      { ...valid, url: urlOf(2048) },
      { ...valid, secret: "s".repeat(24) },
      { ...valid, secret: "s".repeat(128) },
      { ...valid, description: "d".repeat(512) },
      { ...valid, description: null },
      { ...valid, description: "multi-line\nwith émoji 😀 and tabs\t" },
      { ...valid, active: false },
      { ...valid, timeout_seconds: 1 },
      { ...valid, timeout_seconds: 30 },
      { ...valid, events: ["*"] },
      { ...valid, events: ["message.created", "call.failed", "webhook.test"] },
      { ...valid, retry_policy: null },
      { ...valid, retry_policy: { strategy: "exponential", max_attempts: 1, initial_delay_seconds: 1, max_delay_seconds: 1 } },
      { ...valid, retry_policy: { strategy: "exponential", max_attempts: 10, initial_delay_seconds: 3600, max_delay_seconds: 86400 } },
      { ...valid, retry_policy: { strategy: "fixed", max_attempts: 1, delay_seconds: 1 } },
      { ...valid, retry_policy: { strategy: "fixed", max_attempts: 10, delay_seconds: 86400 } },
      { ...valid, retry_policy: { strategy: "custom", delays_seconds: [] } },
      { ...valid, retry_policy: { strategy: "custom", delays_seconds: [1, 2, 3, 4, 5, 6, 7, 8, 86400] } },
      { ...valid, headers: {} },
      { ...valid, headers: { ["X".repeat(64)]: "v".repeat(1024), "!#$%&'*+-.^_`|~09az": "", "X-Printable": " !~ printable ~! " } },
      { ...valid, headers: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`X-H${i}`, "v"])) },
      // Names that merely contain a reserved word are the caller's own.
      { ...valid, headers: { "X-Host": "h", "X-Webhook-Id": "w", "Devotel-Tenant": "d", "Authorization": "Bearer abc" } }
    ]
    const { key: k } = await platform.createKey(uniqueTenant())
    for (const body of bodies) {
      const res = await post(body, k)
      expect(res.status, `${JSON.stringify(body).slice(0, 200)}: ${res.text.slice(0, 300)}`).toBe(201)
    }
    const stored = (await platform.api("GET", `${BASE}?limit=200`, { key: k })).json.data as Array<{ url: string; description: string | null }>
    expect(stored).toHaveLength(bodies.length)
    // The values are stored as sent (the read model is not a lossy copy of the request).
    expect(stored.map((e) => e.description)).toContain("multi-line\nwith émoji 😀 and tabs\t")
    expect(stored.map((e) => e.url)).toContain(urlOf(2048))
  })

  it("reports one details entry per problem, each with its field", async () => {
    const three = await post({ url: 5, events: [], timeout_seconds: 0 })
    const details = expectError(three, 422, "VALIDATION_ERROR")
    expect(details).toHaveLength(3)
    expect(details.map((d) => d.field).sort()).toEqual(["events", "timeout_seconds", "url"])
    expect(details.find((d) => d.field === "timeout_seconds")).toMatchObject({ value: 0, expected: "integer 1–30" })
    expect(details.find((d) => d.field === "url")).toMatchObject({ value: 5 })

    const five = await post({
      events: ["message.sent", "nope.nope"],
      active: "yes",
      retry_policy: { strategy: "fixed", max_attempts: 0, delay_seconds: 0 },
      extra: 1
    })
    expect(expectError(five, 422, "VALIDATION_ERROR").map((d) => d.field).sort()).toEqual([
      "active",
      "events[1]",
      "extra",
      "retry_policy.delay_seconds",
      "retry_policy.max_attempts",
      "url"
    ])
  })

  it("echoes at most a bounded preview of a huge value", async () => {
    const res = await post({ ...valid, description: "x".repeat(60_000) })
    const [detail] = expectError(res, 422, "VALIDATION_ERROR")
    expect(detail!.field).toBe("description")
    expect(res.text.length).toBeLessThan(4_000)
  })
})

describe("POST /api/v1/webhooks body encoding", () => {
  it("refuses a body that is not JSON with 400 INVALID_JSON", async () => {
    for (const raw of ["{url:", "", " ", "{\"url\": \"https://a.example.com/\",}", `${JSON.stringify(valid)} trailing`, "undefined", "NaN", "'x'"]) {
      expectError(await postRaw(raw, "application/json"), 400, "INVALID_JSON")
    }
  })

  it("refuses a wrong or missing Content-Type with 400 INVALID_JSON, even for a valid JSON body", async () => {
    const raw = JSON.stringify(valid)
    for (const contentType of [undefined, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json", "application/jsonp", "json"]) {
      expectError(await postRaw(raw, contentType), 400, "INVALID_JSON")
    }
    // ...while JSON content types with parameters or suffixes are fine.
    for (const contentType of ["application/json; charset=utf-8", "APPLICATION/JSON", "application/json;charset=UTF-8"]) {
      expect((await postRaw(raw, contentType)).status, contentType).toBe(201)
    }
  })

  it("refuses a body over 64 KiB with 413 PAYLOAD_TOO_LARGE; exactly 64 KiB is read", async () => {
    const sized = (bytes: number) => {
      const base = JSON.stringify({ ...valid, description: "" })
      return JSON.stringify({ ...valid, description: "x".repeat(bytes - base.length) })
    }
    expect(Buffer.byteLength(sized(MAX_BODY))).toBe(MAX_BODY)
    // 64 KiB exactly: read and validated (the description is too long → 422, not 413).
    const atLimit = await postRaw(sized(MAX_BODY), "application/json")
    expect(expectError(atLimit, 422, "VALIDATION_ERROR").map((d) => d.field)).toEqual(["description"])
    expectError(await postRaw(sized(MAX_BODY + 1), "application/json"), 413, "PAYLOAD_TOO_LARGE")
    expectError(await postRaw(sized(1024 * 1024), "application/json"), 413, "PAYLOAD_TOO_LARGE")
    // Multi-byte characters count as bytes, not characters: 30 000 × "€" (3 bytes) > 64 KiB.
    const euros = JSON.stringify({ ...valid, description: "€".repeat(30_000) })
    expect(euros.length).toBeLessThan(MAX_BODY)
    expectError(await postRaw(euros, "application/json"), 413, "PAYLOAD_TOO_LARGE")
  })

  it("refuses a streamed (chunked, no Content-Length) body over 64 KiB; a small streamed body works", async () => {
    const headers = { "x-api-key": key, "content-type": "application/json" }
    const prefix = `{"url":"https://hooks.example.com/streamed","events":["message.sent"],"description":"`
    const big = await streamed("POST", BASE, [prefix, ...Array<string>(80).fill("y".repeat(1024)), "\"}"], headers)
    expect(big.status).toBe(413)
    expect(big.json.error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", status: 413 })
    expect(big.headers["x-request-id"]).toBe(big.json.meta.request_id)

    const small = await streamed("POST", BASE, [prefix, "small", "\"}"], headers)
    expect(small.status).toBe(201)
    expect(small.json.data.description).toBe("small")
  })
})

describe("PUT /api/v1/webhooks/{id} body validation", () => {
  let id: string
  let original: unknown
  beforeAll(async () => {
    const created = await post(valid)
    expect(created.status).toBe(201)
    id = created.json.data.id
    original = (await platform.api("GET", `${BASE}/${id}`, { key })).json.data
  })
  const put = (body: unknown) => platform.api("PUT", `${BASE}/${id}`, { key, body })

  it.each(bodyCases.filter((c) => !(typeof c.body === "object" && c.body !== null && "secret" in c.body)).map((c) => [c.name, c] as const))(
    "%s → 422",
    async (_name, c) => {
      expectCase(await put(c.body), c)
    }
  )

  it("refuses `secret` (not replaceable by PUT), bad JSON, a wrong Content-Type and a body over 64 KiB", async () => {
    const secret = await put({ ...valid, secret: "s".repeat(32) })
    expect(expectError(secret, 422, "VALIDATION_ERROR").map((d) => d.field)).toEqual(["secret"])
    expectError(await platform.api("PUT", `${BASE}/${id}`, { key, rawBody: "{", headers: { "content-type": "application/json" } }), 400, "INVALID_JSON")
    expectError(await platform.api("PUT", `${BASE}/${id}`, { key, rawBody: JSON.stringify(valid), headers: { "content-type": "text/plain" } }), 400, "INVALID_JSON")
    expectError(await platform.api("PUT", `${BASE}/${id}`, { key, rawBody: JSON.stringify(valid) }), 400, "INVALID_JSON")
    expectError(await put({ ...valid, description: "x".repeat(MAX_BODY) }), 413, "PAYLOAD_TOO_LARGE")
    const prefix = `{"url":"https://hooks.example.com/orbit","events":["message.sent"],"description":"`
    const big = await streamed("PUT", `${BASE}/${id}`, [prefix, ...Array<string>(80).fill("z".repeat(1024)), "\"}"], {
      "x-api-key": key,
      "content-type": "application/json"
    })
    expect(big.status).toBe(413)
  })

  it("left the endpoint exactly as it was after all the refused PUTs", async () => {
    const now = await platform.api("GET", `${BASE}/${id}`, { key })
    expect(now.status).toBe(200)
    expect(now.json.data).toEqual(original)
    // A valid PUT still works, so the refusals were about the bodies.
    const ok = await put({ ...valid, events: ["call.completed"], timeout_seconds: 30 })
    expect(ok.status).toBe(200)
    expect(ok.json.data.events).toEqual(["call.completed"])
  })
})

describe("GET /api/v1/webhooks query validation", () => {
  it("refuses a limit that is not a decimal integer 1–200", async () => {
    for (const limit of ["0", "201", "-1", "1.5", "abc", "", "0x10", "1e1", "%205", "5%20", "+5", "99999999999999999999"]) {
      const res = await platform.api("GET", `${BASE}?limit=${limit}`, { key })
      const details = expectError(res, 422, "VALIDATION_ERROR")
      expect(details.map((d) => d.field), `limit=${limit}`).toEqual(["limit"])
    }
    for (const limit of ["1", "25", "200"]) {
      expect((await platform.api("GET", `${BASE}?limit=${limit}`, { key })).status, limit).toBe(200)
    }
  })

  it("refuses repeated parameters and unknown parameters, one detail each", async () => {
    const twice = await platform.api("GET", `${BASE}?limit=1&limit=2`, { key })
    expect(expectError(twice, 422, "VALIDATION_ERROR").map((d) => d.field)).toEqual(["limit"])
    const cursorTwice = await platform.api("GET", `${BASE}?cursor=a&cursor=b`, { key })
    expect(expectError(cursorTwice, 422, "VALIDATION_ERROR").map((d) => d.field)).toEqual(["cursor"])
    const unknown = await platform.api("GET", `${BASE}?page=2&sort=asc`, { key })
    expect(expectError(unknown, 422, "VALIDATION_ERROR").map((d) => d.field).sort()).toEqual(["page", "sort"])
    const both = await platform.api("GET", `${BASE}?limit=0&offset=5`, { key })
    expect(expectError(both, 422, "VALIDATION_ERROR").map((d) => d.field).sort()).toEqual(["limit", "offset"])
  })

  it("treats parameters named like Object.prototype members as the unknown parameters they are", async () => {
    const cases = [
      ["__proto__=1", ["__proto__"]],
      ["__proto__=1&constructor=2", ["__proto__", "constructor"]],
      ["toString=1&hasOwnProperty=2&valueOf=3", ["hasOwnProperty", "toString", "valueOf"]],
      ["limit=5&__proto__=1", ["__proto__"]],
      ["limit=0&constructor=x", ["constructor", "limit"]]
    ] as const
    for (const [query, fields] of cases) {
      const res = await platform.api("GET", `${BASE}?${query}`, { key })
      expect(expectError(res, 422, "VALIDATION_ERROR").map((d) => d.field).sort(), query).toEqual(fields)
    }
    // The same decoding serves the attempt log's query.
    const deliveries = await platform.api("GET", `${BASE}/wh_aaaaaaaaaaaaaaaaaaaaaaaa/deliveries?__proto__=1&toString=2`, { key })
    expect(expectError(deliveries, 422, "VALIDATION_ERROR").map((d) => d.field).sort()).toEqual(["__proto__", "toString"])
  })

  it("refuses a cursor that this API did not produce with 400 INVALID_CURSOR", async () => {
    for (const cursor of ["x", "a".repeat(5000), "%00%ff.%2e", "eyJ9.abc"]) {
      expectError(await platform.api("GET", `${BASE}?cursor=${cursor}`, { key }), 400, "INVALID_CURSOR")
    }
  })
})

describe("error envelope on every kind of error", () => {
  it("401, 403, 404 and unknown routes use the envelope and X-Request-Id; request ids are unique", async () => {
    const { key: publicKey } = await platform.createKey(uniqueTenant(), "live", "public")
    const responses = [
      [await platform.api("GET", BASE), 401, "INVALID_API_KEY"],
      [await platform.api("POST", BASE, { key: publicKey, body: valid }), 403, "INSUFFICIENT_PERMISSIONS"],
      [await platform.api("GET", `${BASE}/wh_doesnotexist0000000000000`, { key }), 404, "NOT_FOUND"],
      [await platform.api("GET", "/api/v1/nothing-here", { key }), 404, "NOT_FOUND"],
      [await platform.api("PATCH", BASE, { key, body: valid }), 404, "NOT_FOUND"]
    ] as const
    const ids = new Set<string>()
    for (const [res, status, code] of responses) {
      expectError(res, status, code)
      ids.add(res.json.meta.request_id)
    }
    expect(ids.size).toBe(responses.length)
  })

  it("a path whose percent-encoding does not decode is an unknown route: 404 NOT_FOUND", async () => {
    for (const [method, pathname] of [
      ["GET", `${BASE}/%E0%A4%A`],
      ["GET", `${BASE}/%ZZ`],
      ["GET", `${BASE}/wh_%E0%A4%A`],
      ["PUT", `${BASE}/%E0%A4%A`],
      ["DELETE", `${BASE}/%E0%A4%A`],
      ["POST", `${BASE}/%E0%A4%A/rotate-secret`],
      ["GET", `${BASE}/%E0%A4%A/deliveries`],
      ["GET", "/api/v1/%E0%A4%A"]
    ] as const) {
      const res = await platform.api(method, pathname, { key, ...(method === "PUT" ? { body: valid } : {}) })
      expectError(res, 404, "NOT_FOUND")
    }
  })
})

describe("bad input changes nothing", () => {
  it("after every refused POST the tenant's list is empty, no event reached Kafka and no Idempotency-Key was spent", async () => {
    const tenant = uniqueTenant()
    const { key: k } = await platform.createKey(tenant)
    const kafka = new Kafka({ brokers: brokers(), logLevel: logLevel.NOTHING })
    const admin = kafka.admin()
    await admin.connect()
    const topic = `${platform.topicPrefix}webhooks.endpoint-events`
    const offsets = async () =>
      (await admin.fetchTopicOffsets(topic)).map((o) => `${o.partition}:${o.high}`).sort().join(",")
    try {
      const before = await offsets()
      const headers = { "idempotency-key": "bad-then-good" }
      for (const c of bodyCases) {
        const res = await platform.api("POST", BASE, { key: k, body: c.body, headers })
        expect(res.status, c.name).toBe(422)
      }
      for (const [raw, status, code] of [["{", 400, "INVALID_JSON"], ["[]", 422, "VALIDATION_ERROR"], ["null", 422, "VALIDATION_ERROR"]] as const) {
        expectError(await platform.api("POST", BASE, { key: k, rawBody: raw, headers: { ...headers, "content-type": "application/json" } }), status, code)
      }
      expectError(await platform.api("POST", BASE, { key: k, rawBody: JSON.stringify(valid), headers }), 400, "INVALID_JSON")
      expectError(await platform.api("POST", BASE, { key: k, body: { ...valid, description: "x".repeat(MAX_BODY) }, headers }), 413, "PAYLOAD_TOO_LARGE")

      const list = await platform.api("GET", BASE, { key: k })
      expect(list.status).toBe(200)
      expect(list.json.data).toEqual([])
      expect(list.json.meta.pagination).toEqual({ cursor: null, has_more: false })
      expect(await offsets()).toBe(before)
      const [{ count }] = await platform.sql`SELECT count(*)::int AS count FROM endpoints WHERE tenant_id = ${tenant}`
      expect(count).toBe(0)
      const [{ spent }] = await platform.sql`SELECT count(*)::int AS spent FROM idempotency_keys WHERE tenant_id = ${tenant}`
      expect(spent).toBe(0)

      // The same Idempotency-Key now registers a valid body: the refusals did not claim it.
      const good = await platform.api("POST", BASE, { key: k, body: valid, headers })
      expect(good.status).toBe(201)
      expect(await offsets()).not.toBe(before)
    } finally {
      await admin.disconnect()
    }
  })
})

describe("no 500 for anything", () => {
  it("answers each kind of hostile input with its exact status and code, and keeps serving", async () => {
    const { key: k } = await platform.createKey(uniqueTenant())
    const json = (raw: string) => ({ key: k, rawBody: raw, headers: { "content-type": "application/json" } })
    const deepArray = `${"[".repeat(50_000)}${"]".repeat(50_000)}`.slice(0, 60_000)
    const deepObject = `${"{\"a\":".repeat(6_000)}1${"}".repeat(6_000)}`
    const manyParams = Array.from({ length: 500 }, (_, i) => `p${i}`)
    /**
     * name, request, and the answer: a success status, or an error status, its code and (for
     * VALIDATION_ERROR) the fields named. `closes`: the server answers and closes the connection
     * while the client may still be sending, so a connection error is an acceptable outcome too.
     */
    const requests: Array<{
      name: string
      method: string
      path: string
      options: Parameters<Platform["api"]>[2]
      status: number
      code?: string
      fields?: ReadonlyArray<string>
      closes?: true
    }> = [
      { name: "deep array (unterminated)", method: "POST", path: BASE, options: json(deepArray), status: 400, code: "INVALID_JSON" },
      { name: "deep array in events", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":${"[".repeat(5000)}${"]".repeat(5000)}}`), status: 422, code: "VALIDATION_ERROR", fields: ["events[0]"] },
      { name: "deep object", method: "POST", path: BASE, options: json(deepObject), status: 422, code: "VALIDATION_ERROR", fields: ["a", "events", "url"] },
      { name: "deep retry_policy", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"retry_policy":${deepObject}}`), status: 422, code: "VALIDATION_ERROR", fields: ["retry_policy"] },
      { name: "1e999", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"timeout_seconds":1e999}`), status: 422, code: "VALIDATION_ERROR", fields: ["timeout_seconds"] },
      { name: "-1e999", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"timeout_seconds":-1e999}`), status: 422, code: "VALIDATION_ERROR", fields: ["timeout_seconds"] },
      { name: "huge integer", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"timeout_seconds":${"9".repeat(400)}}`), status: 422, code: "VALIDATION_ERROR", fields: ["timeout_seconds"] },
      { name: "huge max_attempts", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"retry_policy":{"strategy":"fixed","max_attempts":1e308,"delay_seconds":1e308}}`), status: 422, code: "VALIDATION_ERROR", fields: ["retry_policy.delay_seconds", "retry_policy.max_attempts"] },
      { name: "-0", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"timeout_seconds":-0}`), status: 422, code: "VALIDATION_ERROR", fields: ["timeout_seconds"] },
      { name: "__proto__", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"__proto__":{"admin":true,"url":"https://evil.example/"}}`), status: 422, code: "VALIDATION_ERROR", fields: ["__proto__"] },
      { name: "__proto__ only", method: "POST", path: BASE, options: json(`{"__proto__":{"url":"https://a.example.com/","events":["*"]}}`), status: 422, code: "VALIDATION_ERROR", fields: ["__proto__", "events", "url"] },
      { name: "constructor", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"constructor":{"prototype":{"admin":true}}}`), status: 422, code: "VALIDATION_ERROR", fields: ["constructor"] },
      { name: "prototype names in events", method: "POST", path: BASE, options: { key: k, body: { url: "https://a.example.com/", events: ["__proto__", "constructor", "toString", "hasOwnProperty"] } }, status: 422, code: "VALIDATION_ERROR", fields: ["events[0]", "events[1]", "events[2]", "events[3]"] },
      { name: "prototype strategy", method: "POST", path: BASE, options: { key: k, body: { url: "https://a.example.com/", events: ["*"], retry_policy: { strategy: "__proto__" } } }, status: 422, code: "VALIDATION_ERROR", fields: ["retry_policy"] },
      { name: "toString url", method: "POST", path: BASE, options: { key: k, body: { url: { toString: "https://a.example.com/" }, events: ["*"] } }, status: 422, code: "VALIDATION_ERROR", fields: ["url"] },
      // JSON.parse keeps the last of duplicate keys: url is 5.
      { name: "duplicate keys", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","url":5,"events":["*"]}`), status: 422, code: "VALIDATION_ERROR", fields: ["url"] },
      // A UTF-8 byte order mark is not part of the text (the body decodes as UTF-8 text first).
      { name: "BOM", method: "POST", path: BASE, options: json(`\ufeff${JSON.stringify(valid)}`), status: 201 },
      { name: "invalid UTF-8", method: "POST", path: BASE, options: { key: k, rawBody: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString("latin1"), headers: { "content-type": "application/json" } }, status: 400, code: "INVALID_JSON" },
      { name: "unicode url", method: "POST", path: BASE, options: { key: k, body: { url: "https://exämple.com/пример/😀", events: ["*"] } }, status: 201 },
      { name: "RTL + zero-width url", method: "POST", path: BASE, options: { key: k, body: { url: "https://\u202eexample.com\u200b/", events: ["*"] } }, status: 422, code: "INVALID_WEBHOOK_URL", fields: ["url"] },
      { name: "emoji description", method: "POST", path: BASE, options: { key: k, body: { ...valid, description: "😀".repeat(128) } }, status: 201 },
      { name: "lone surrogates", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/\\udc00","events":["*"],"description":"\\ud800"}`), status: 422, code: "VALIDATION_ERROR", fields: ["description", "url"] },
      { name: "null byte escape", method: "POST", path: BASE, options: json(`{"url":"https://a.example.com/","events":["*"],"description":"\\u0000"}`), status: 422, code: "VALIDATION_ERROR", fields: ["description"] },
      { name: "very long header value", method: "GET", path: BASE, options: { key: k, headers: { "x-filler": "a".repeat(12_000) } }, status: 200 },
      { name: "oversized headers", method: "GET", path: BASE, options: { key: k, headers: { "x-filler": "a".repeat(70_000) } }, status: 431, code: "HEADERS_TOO_LARGE", closes: true },
      { name: "long API key", method: "GET", path: BASE, options: { key: `dv_live_sk_${"A".repeat(8_000)}` }, status: 401, code: "INVALID_API_KEY" },
      { name: "API key with odd bytes", method: "GET", path: BASE, options: { key: "dv_live_sk_ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ" }, status: 401, code: "INVALID_API_KEY" },
      { name: "long Idempotency-Key", method: "POST", path: BASE, options: { key: k, body: valid, headers: { "idempotency-key": "i".repeat(8_000) } }, status: 422, code: "VALIDATION_ERROR", fields: ["Idempotency-Key"] },
      { name: "long cursor", method: "GET", path: `${BASE}?cursor=${"c".repeat(6_000)}`, options: { key: k }, status: 400, code: "INVALID_CURSOR" },
      { name: "many query params", method: "GET", path: `${BASE}?${manyParams.map((p, i) => `${p}=${i}`).join("&")}`, options: { key: k }, status: 422, code: "VALIDATION_ERROR", fields: manyParams },
      { name: "query __proto__", method: "GET", path: `${BASE}?__proto__=1&constructor=2`, options: { key: k }, status: 422, code: "VALIDATION_ERROR", fields: ["__proto__", "constructor"] },
      { name: "bad percent-encoding in path", method: "GET", path: `${BASE}/%E0%A4%A`, options: { key: k }, status: 404, code: "NOT_FOUND" },
      // URLSearchParams decodes a broken escape to U+FFFD, which is not a number.
      { name: "bad percent-encoding in query", method: "GET", path: `${BASE}?limit=%E0%A4%A`, options: { key: k }, status: 422, code: "VALIDATION_ERROR", fields: ["limit"] },
      { name: "long id", method: "GET", path: `${BASE}/wh_${"a".repeat(5_000)}`, options: { key: k }, status: 404, code: "NOT_FOUND" },
      { name: "path traversal id", method: "GET", path: `${BASE}/..%2F..%2Fhealthz`, options: { key: k }, status: 404, code: "NOT_FOUND" },
      { name: "PUT with prototype id", method: "PUT", path: `${BASE}/__proto__`, options: { key: k, body: valid }, status: 404, code: "NOT_FOUND" },
      { name: "DELETE constructor id", method: "DELETE", path: `${BASE}/constructor`, options: { key: k }, status: 404, code: "NOT_FOUND" },
      { name: "PATCH collection", method: "PATCH", path: BASE, options: { key: k, body: valid }, status: 404, code: "NOT_FOUND" },
      { name: "PUT collection", method: "PUT", path: BASE, options: { key: k, body: valid }, status: 404, code: "NOT_FOUND" },
      { name: "DELETE collection", method: "DELETE", path: BASE, options: { key: k }, status: 404, code: "NOT_FOUND" },
      { name: "OPTIONS collection", method: "OPTIONS", path: BASE, options: { key: k }, status: 404, code: "NOT_FOUND" },
      { name: "HEAD collection", method: "HEAD", path: BASE, options: { key: k }, status: 200 },
      { name: "PROPFIND", method: "PROPFIND", path: BASE, options: { key: k }, status: 404, code: "NOT_FOUND" },
      { name: "POST to an id", method: "POST", path: `${BASE}/wh_aaaaaaaaaaaaaaaaaaaaaaaa`, options: { key: k, body: valid }, status: 404, code: "NOT_FOUND" },
      // A malformed id is an unknown id whatever else is wrong with the request (API.md §2: 404 first).
      { name: "malformed id, refused query", method: "GET", path: `${BASE}/not-an-id/deliveries?limit=0&unknown=1`, options: { key: k }, status: 404, code: "NOT_FOUND" },
      { name: "malformed id, refused body", method: "PUT", path: `${BASE}/not-an-id`, options: { key: k, body: { url: 5 } }, status: 404, code: "NOT_FOUND" },
      { name: "malformed id, body not JSON", method: "POST", path: `${BASE}/not-an-id/rotate-secret`, options: json("{"), status: 404, code: "NOT_FOUND" }
    ]
    for (const { name, method, path, options, status, code, fields, closes } of requests) {
      let res: Res
      try {
        res = await platform.api(method, path, options)
      } catch (e) {
        // Only where the server closes the connection on purpose may the exchange end without an answer.
        if (closes) continue
        throw new Error(`${name}: the request failed without an answer: ${String(e)} (${String((e as Error).cause)})`)
      }
      if (code === undefined) {
        expect(res.status, `${name}: ${res.text.slice(0, 300)}`).toBe(status)
        if (method !== "HEAD") expect(res.headers.get("x-request-id"), name).toBe(res.json.meta.request_id)
        continue
      }
      const details = expectError(res, status, code)
      if (fields) expect(details.map((d) => d.field).sort(), name).toEqual([...fields].sort())
    }
    // fetch refuses to send a GET with a body, so node:http sends it: the list ignores the body.
    const getWithBody = await plainRequest("GET", BASE, { "x-api-key": k, "content-type": "application/json" }, "{}")
    expect(getWithBody.status, getWithBody.text).toBe(200)
    expect(JSON.parse(getWithBody.text).data).toHaveLength(3)

    // Raw sockets, for what neither would send: each is answered 400 MALFORMED_REQUEST and closed.
    for (const raw of [
      // The client ends after 8 of the 10 body bytes it announced.
      `POST ${BASE} HTTP/1.1\r\nHost: x\r\nX-API-Key: ${k}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"url":1`,
      `POST ${BASE} HTTP/1.1\r\nHost: x\r\nX-API-Key: ${k}\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n{}`,
      `GET ${BASE}?limit=\u00ff HTTP/1.1\r\nHost: x\r\nX-API-Key: ${k}\r\n\r\n`
    ]) {
      await expectRawError(raw, 400, "MALFORMED_REQUEST")
    }
    // Still healthy, nothing unexpected was logged, and the tenant holds only what a 2xx created.
    // Readiness is sampled once a second and includes the projection's lag, which the writes above
    // can leave non-zero for a moment: wait for it to be ready again, not for it to be ready at once.
    await platform.ready()
    expect((await post(valid, k)).status).toBe(201)
    expect((await platform.api("GET", BASE, { key: k })).json.data).toHaveLength(4)
    const logs = (platform.logs.get("registration") ?? []).join("\n")
    expect(logs).not.toContain("unhandled error")
    expect(logs).not.toContain("INTERNAL_ERROR")
  })
})

/** One request over node:http (which, unlike fetch, sends a body with any method). */
const plainRequest = (method: string, pathname: string, headers: Record<string, string>, body: string) =>
  new Promise<{ status: number; text: string }>((resolve, reject) => {
    const url = new URL(platform.baseUrl)
    const framed = { ...headers, "content-length": String(Buffer.byteLength(body)) }
    const req = http.request({ host: url.hostname, port: url.port, path: pathname, method, headers: framed }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => (text += c))
      res.on("end", () => resolve({ status: res.statusCode!, text }))
    })
    req.on("error", reject)
    req.end(body)
  })

/**
 * Writes raw bytes to the server and returns all it answered before closing. Every raw request
 * here is one the server answers and then closes, so the exchange ends when the server closes;
 * a reset on the way (the server closing while bytes it never read are still arriving) is
 * returned with the text, which the caller checks in full.
 */
const rawResponse = (raw: string): Promise<{ text: string; error?: string }> =>
  new Promise((resolve) => {
    const url = new URL(platform.baseUrl)
    const socket = net.connect(Number(url.port), url.hostname, () => socket.end(Buffer.from(raw, "latin1")))
    let text = ""
    let error: string | undefined
    socket.setEncoding("latin1")
    socket.on("data", (c: string) => (text += c))
    socket.on("error", (e) => (error = String(e)))
    socket.on("close", () => resolve(error === undefined ? { text } : { text, error }))
  })

/** A raw exchange answered with the error envelope: status line, code, request id and length. */
const expectRawError = async (raw: string, status: number, code: string) => {
  const { text, error } = await rawResponse(raw)
  const what = `${raw.slice(0, 60)}… → ${text.slice(0, 200) || "(no answer)"}${error ? ` [${error}]` : ""}`
  const [head, body = ""] = text.split("\r\n\r\n") as [string, string?]
  expect(head, what).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `))
  const json = JSON.parse(body)
  expect(json.error, what).toMatchObject({ code, status })
  expect(head.toLowerCase()).toContain(`x-request-id: ${json.meta.request_id.toLowerCase()}`)
  expect(head.toLowerCase()).toContain(`content-length: ${Buffer.byteLength(body)}`)
  expect(head.toLowerCase()).toContain("connection: close")
}

describe("requests Node cannot parse", () => {
  it("get the error envelope too: 431 HEADERS_TOO_LARGE, 400 MALFORMED_REQUEST", async () => {
    const cases = [
      [`GET ${BASE} HTTP/1.1\r\nHost: x\r\nX-Padding: ${"a".repeat(20_000)}\r\n\r\n`, 431, "HEADERS_TOO_LARGE"],
      ["GARBAGE\r\n\r\n", 400, "MALFORMED_REQUEST"],
      [`POST ${BASE} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}`, 400, "MALFORMED_REQUEST"]
    ] as const
    for (const [raw, status, code] of cases) await expectRawError(raw, status, code)
    // Readiness is sampled once a second and includes the projection's lag, which the writes above
    // can leave non-zero for a moment: wait for it to be ready again, not for it to be ready at once.
    await platform.ready()
  })

  // Found by the API fuzz run (api-fuzz.test.ts): Node answers these itself with a bare status
  // line, or not at all, unless the server takes them over.
  it("a request without Host, and a CONNECT, get the envelope; an unknown Expect is served like any request", async () => {
    // HTTP/1.1 requires Host (RFC 9112 §3.2): 400, in the envelope.
    await expectRawError(`GET ${BASE} HTTP/1.1\r\nX-API-Key: ${key}\r\n\r\n`, 400, "MALFORMED_REQUEST")
    await expectRawError(`POST ${BASE} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, 400, "MALFORMED_REQUEST")
    // CONNECT names no route of this API.
    await expectRawError(`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`, 404, "NOT_FOUND")
    // An expectation other than 100-continue is ignored (RFC 9110 §10.1.1 allows it): the request
    // is authenticated and routed as it would be without the header.
    const unauthenticated = await plainRequest("GET", BASE, { expect: "something-else" }, "")
    expect(unauthenticated.status, unauthenticated.text).toBe(401)
    expect(JSON.parse(unauthenticated.text).error.code).toBe("INVALID_API_KEY")
    const listed = await plainRequest("GET", `${BASE}?limit=1`, { expect: "something-else", "x-api-key": key }, "")
    expect(listed.status, listed.text).toBe(200)
    expect(JSON.parse(listed.text).meta.pagination).toBeDefined()
  })

  it("a HEAD that Node cannot parse is answered with the envelope's headers and no body", async () => {
    // A body after a HEAD's headers breaks the client's framing ("Data after Connection: close").
    const { text } = await rawResponse(`HEAD ${BASE}/\u00eb/deliveries HTTP/1.1\r\nHost: x\r\nX-API-Key: ${key}\r\n\r\n`)
    const [head, body] = text.split("\r\n\r\n") as [string, string?]
    expect(head, text).toMatch(/^HTTP\/1\.1 400 /)
    expect(head.toLowerCase()).toMatch(/\r\nx-request-id: req_[a-z0-9_-]{16}\r\n/)
    expect(head.toLowerCase()).toContain("content-type: application/json")
    expect(body, text).toBe("")
  })
})
