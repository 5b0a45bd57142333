/**
 * A property-based fuzz run of the public API (fast-check), shared by the CI-sized e2e test
 * (`e2e/api-fuzz.test.ts`) and the longer run (`npm run fuzz:api`, `fuzz/api.ts`).
 *
 * Each fast-check case is a batch of generated requests — methods, paths (valid, malformed,
 * foreign and deleted endpoint ids, unknown routes, odd encodings, long paths), headers (keys of
 * every kind, missing and duplicated; Content-Type variants; odd Idempotency-Keys; large headers),
 * query strings (repeated, unknown, out of range, odd encodings) and bodies (valid-ish and hostile
 * JSON, non-JSON bytes, deep nesting, sizes around 64 KiB, prototype keys) — sent over node:http
 * (which, unlike fetch, sends duplicated headers and a body with any method) with a few requests in
 * flight at once. Properties:
 * - no answer is a 5xx;
 * - every answer has its content type (JSON everywhere but the reference page and its script) and
 *   an `X-Request-Id`; every non-2xx carries the API.md §2 error envelope, its code matching its
 *   status; every 2xx of the webhook and event-type routes carries the success envelope;
 * - a refused request changes nothing: the read model (every endpoint row of every tenant), the
 *   end offsets of the endpoint and source-event topics and the Idempotency-Key table are
 *   snapshotted around each batch, and every difference must be accounted for by a 2xx write of
 *   that batch (the row of an id it created or named, at most one record per such write, one
 *   source event per accepted test event, the Idempotency-Key of an accepted registration).
 */
import http from "node:http"
import fc from "fast-check"
import { topicsFor } from "@orbit/domain"
import { Kafka, logLevel } from "@orbit/kafka"
import { brokers } from "../../infra/kafka.ts"
import type { Platform } from "./Platform.ts"

const BASE = "/api/v1/webhooks"
const MAX_BODY = 64 * 1024

/** The error codes of API.md §2 (and ours for requests Node cannot parse) with their statuses. */
export const ERROR_STATUS: Readonly<Record<string, number>> = {
  INVALID_API_KEY: 401,
  INSUFFICIENT_PERMISSIONS: 403,
  VALIDATION_ERROR: 422,
  INVALID_JSON: 400,
  INVALID_CURSOR: 400,
  INVALID_WEBHOOK_URL: 422,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL_ERROR: 500,
  MALFORMED_REQUEST: 400,
  HEADERS_TOO_LARGE: 431
}

/** One generated request: headers as name/value pairs, so a name may repeat. */
export interface FuzzRequest {
  readonly method: string
  readonly path: string
  /** A `Host` without a value is the server's own host and port. */
  readonly headers: ReadonlyArray<readonly [string, string | undefined]>
  readonly body?: Buffer
  readonly chunked: boolean
}

export interface FuzzResponse {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly text: string
}

/** The keys and ids the generators draw from; set up by `prepareFuzz`. */
export interface FuzzWorld {
  /** Live secret key of the fuzzed tenant, and its public, test-mode and revoked keys. */
  readonly liveKey: string
  readonly publicKey: string
  readonly testKey: string
  readonly revokedKey: string
  /** A live secret key of another tenant. */
  readonly otherKey: string
  /** Endpoint ids: the tenant's live ones, its test-mode one, another tenant's one, a deleted one. */
  readonly liveIds: ReadonlyArray<string>
  readonly testId: string
  readonly otherId: string
  readonly deletedId: string
  /** Cursors this API produced: the tenant's own and another tenant's. */
  readonly cursors: ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------
// Generators

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 })
const latin1 = fc.string({ unit: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 8 })
const alnum = (min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), minLength: min, maxLength: max })

/** Any string, percent-encoded byte by byte where the request line cannot carry it raw. */
const pathSafe = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/** Odd path segments: encodings that decode oddly or not at all, traversal, prototype names, long ones. */
const oddSegment = fc.oneof(
  fc.constantFrom(
    "", ".", "..", "%2e%2e", "..%2F..%2Fhealthz", "%2F", "%00", "%ZZ", "%E0%A4%A", "%", "%%", "%C0%AF", "%FF%FE",
    "__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "wh_", "WH_AAAAAAAAAAAAAAAAAAAA",
    "wh_%00aaaaaaaaaaaaaaaaaaaa", "wh_aaaaaaaaaaaaaaaaaaa%20", ";", "*", "~", "@", ":id", "{id}", "%7Bid%7D", "+", "%20", "%u0041"
  ),
  fc.string({ maxLength: 30 }).map(pathSafe),
  fc.string({ unit: "binary", maxLength: 12 }).map(pathSafe),
  printable.map(pathSafe),
  latin1.map((s) => s),
  fc.integer({ min: 300, max: 6000 }).map((n) => `wh_${"a".repeat(n)}`),
  alnum(1, 60).map((s) => `wh_${s}`)
)

const idArb = (w: FuzzWorld) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...w.liveIds) },
    { weight: 1, arbitrary: fc.constant(w.testId) },
    { weight: 1, arbitrary: fc.constant(w.otherId) },
    { weight: 1, arbitrary: fc.constant(w.deletedId) },
    { weight: 1, arbitrary: alnum(20, 28).map((s) => `wh_${s}`) },
    { weight: 3, arbitrary: oddSegment }
  )

const SUFFIXES = ["", "/", "/rotate-secret", "/test", "/deliveries", "/stats", "/deliveries/dlv_1/retry", "/recover", "/x", "//", "/stats/", "/test/x"]

/** A query string: known parameters with good and bad values, unknown and repeated ones, odd encodings. */
const queryArb = (w: FuzzWorld) => {
  const value = fc.oneof(
    fc.constantFrom("1", "25", "100", "200", "0", "201", "-1", "1.5", "1e1", "0x10", "+5", "%205", "", "abc", "99999999999999999999", "NaN", "Infinity", "%E0%A4%A", "%00", "24h", "7d", "1h", "30d"),
    fc.constantFrom(...w.cursors).map(encodeURIComponent),
    fc.integer({ min: -1000, max: 1000 }).map(String),
    fc.string({ maxLength: 30 }).map(pathSafe),
    printable.map(pathSafe),
    fc.integer({ min: 100, max: 6000 }).map((n) => "c".repeat(n))
  )
  const name = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("limit", "cursor", "window") },
    { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "page", "offset", "sort", "LIMIT", "limit[]", "limit%00", "li%6Dit", "") },
    { weight: 1, arbitrary: printable.map(pathSafe) }
  )
  const pair = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(name, value).map(([n, v]) => `${n}=${v}`) },
    { weight: 1, arbitrary: name },
    { weight: 1, arbitrary: fc.constantFrom("=", "&", "==", "limit==5", "limit=5=6", "a+b=c+d") }
  )
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant("") },
    { weight: 4, arbitrary: fc.array(pair, { minLength: 1, maxLength: 5 }).map((ps) => `?${ps.join("&")}`) },
    { weight: 1, arbitrary: fc.integer({ min: 50, max: 400 }).map((n) => `?${Array.from({ length: n }, (_, i) => `p${i}=${i}`).join("&")}`) },
    { weight: 1, arbitrary: fc.constantFrom("?", "??", "?&", "?#", "?limit=1#frag") }
  )
}

const pathArb = (w: FuzzWorld) => {
  const webhook = fc.tuple(idArb(w), fc.oneof({ weight: 3, arbitrary: fc.constantFrom("", "/rotate-secret", "/test", "/deliveries", "/stats") }, { weight: 1, arbitrary: fc.constantFrom(...SUFFIXES) })).map(([id, suffix]) => `${BASE}/${id}${suffix}`)
  const collection = fc.constantFrom(BASE, BASE, BASE, `${BASE}/`, `${BASE}//`, "/api/v1/webhooks%2F", "/API/V1/WEBHOOKS", "/api/v1//webhooks", "/api/v1/webhooks/.", "/api/v1/webhooks;x")
  const other = fc.oneof(
    fc.constantFrom(
      "/", "/api", "/api/v1", "/api/v1/", "/api/v1/event-types", "/api/v1/event-types/", "/api/v1/event-types/message.sent",
      "/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/scalar.js", "/api/v2/webhooks", "/%2e%2e/etc/passwd",
      "/api/v1/%E0%A4%A", "//", "/*", "/api/v1/webhooks/*"
    ),
    fc.array(oddSegment, { minLength: 1, maxLength: 4 }).map((segments) => `/${segments.join("/")}`),
    fc.integer({ min: 1000, max: 6000 }).map((n) => `/api/v1/${"x".repeat(n)}`)
  )
  return fc.tuple(
    fc.oneof({ weight: 6, arbitrary: collection }, { weight: 6, arbitrary: webhook }, { weight: 1, arbitrary: other }),
    queryArb(w)
  ).map(([p, q]) => p + q)
}

const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "PURGE", "LINK", "M-SEARCH"]
const methodArb = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom("GET", "POST", "PUT", "DELETE") },
  { weight: 2, arbitrary: fc.constantFrom(...METHODS) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"), minLength: 1, maxLength: 10 }) }
)

const apiKeyArb = (w: FuzzWorld) =>
  fc.oneof(
    { weight: 20, arbitrary: fc.constant(w.liveKey) },
    { weight: 2, arbitrary: fc.constantFrom(w.publicKey, w.testKey, w.otherKey, w.revokedKey) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.constantFrom("", " ", "dv_live_sk_", "dv_live_pk_", "dv_test_sk_", "Bearer x", "null", "undefined", `${w.liveKey} `, ` ${w.liveKey}`, w.liveKey.toUpperCase(), w.liveKey.slice(0, -1)),
        fc.tuple(fc.constantFrom("dv_live_sk_", "dv_test_sk_", "dv_live_pk_", "dv_test_pk_", "sk_", ""), alnum(0, 64)).map(([p, s]) => p + s),
        printable,
        latin1.map((s) => `dv_live_sk_${s}`),
        fc.integer({ min: 1000, max: 6000 }).map((n) => `dv_live_sk_${"A".repeat(n)}`)
      )
    }
  )

/** X-API-Key: one (mostly the fuzzed tenant's live key), none, or two lines. */
const keyHeadersArb = (w: FuzzWorld) =>
  fc.oneof(
    { weight: 16, arbitrary: apiKeyArb(w).map((k) => [["X-API-Key", k] as const]) },
    { weight: 1, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.tuple(apiKeyArb(w), apiKeyArb(w)).map(([a, b]) => [["X-API-Key", a] as const, ["x-api-key", b] as const]) }
  )

const contentTypeArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant([["Content-Type", "application/json"] as const]) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "application/json; charset=utf-8", "APPLICATION/JSON", "application/json;charset=UTF-8", "application/merge-patch+json",
      "application/vnd.api+json", "application/json; charset=latin1", "application/json;", "application/json ; x=y", "text/plain",
      "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json", "application/jsonp", "json", "",
      "application/json, text/plain", "*/*", "application/", "application/json\t", "application/json\u00ff"
    ).map((ct) => [["Content-Type", ct] as const])
  },
  { weight: 1, arbitrary: fc.constant([]) },
  { weight: 1, arbitrary: fc.constant([["Content-Type", "text/plain"] as const, ["Content-Type", "application/json"] as const]) },
  { weight: 1, arbitrary: fc.constant([["Content-Type", "application/json"] as const, ["Content-Type", "text/plain"] as const]) }
)

/** Host: mostly the server's, sometimes missing (HTTP/1.1 requires it), odd or twice; `undefined` stands for the server's. */
const hostArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant([["Host", undefined]] as const) },
  { weight: 1, arbitrary: fc.constant([] as const) },
  { weight: 1, arbitrary: fc.constantFrom("", "evil.example", "127.0.0.1:1", "[::1]", "a b", "x".repeat(300)).map((h) => [["Host", h]] as const) },
  { weight: 1, arbitrary: fc.constant([["Host", undefined], ["Host", "evil.example"]] as const) }
)

/** A few fixed keys, so keys repeat across requests (with the same and different bodies), and odd ones. */
const idempotencyArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant([]) },
  { weight: 3, arbitrary: fc.constantFrom("fuzz-1", "fuzz-2", "fuzz-3").map((k) => [["Idempotency-Key", k] as const]) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom("", " ", "__proto__", "null", "a,b", "a".repeat(255), "a".repeat(256)),
      printable,
      latin1,
      fc.integer({ min: 256, max: 9000 }).map((n) => "i".repeat(n))
    ).map((k) => [["Idempotency-Key", k] as const])
  },
  { weight: 1, arbitrary: fc.tuple(printable, printable).map(([a, b]) => [["Idempotency-Key", a] as const, ["Idempotency-Key", b] as const]) }
)

const extraHeadersArb = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(
      ["Accept", "text/html"], ["Accept", "application/xml"], ["Accept", "*/*"], ["Accept-Encoding", "gzip, br"], ["Accept-Charset", "latin1"],
      ["X-Forwarded-For", "127.0.0.1"], ["X-Forwarded-For", "::1, 10.0.0.1"], ["X-Request-Id", "req_spoofed"], ["X-HTTP-Method-Override", "DELETE"],
      ["Origin", "https://evil.example"], ["Expect", "100-continue"], ["Expect", "something-else"], ["Upgrade", "websocket"],
      ["Connection", "close"], ["Range", "bytes=0-1"], ["If-None-Match", "*"], ["Authorization", "Bearer x"], ["Cookie", "a=b"],
      ["Content-Encoding", "gzip"], ["Content-Language", "xx"], ["__proto__", "x"], ["constructor", "x"]
    ) as fc.Arbitrary<readonly [string, string]> },
    { weight: 3, arbitrary: fc.tuple(alnum(1, 20).map((n) => `X-${n}`), printable) as fc.Arbitrary<readonly [string, string]> },
    // Large headers within Node's 16 KiB limit, and rarely over it (431).
    {
      weight: 1,
      arbitrary: fc.oneof(
        { weight: 10, arbitrary: fc.integer({ min: 1000, max: 6000 }) },
        { weight: 1, arbitrary: fc.integer({ min: 17_000, max: 20_000 }) }
      ).map((n) => ["X-Filler", "f".repeat(n)] as const)
    }
  ),
  { maxLength: 3 }
)

// JSON texts are built from entries (name, JSON text) so that bodies can carry own `__proto__`
// keys and duplicate keys, which JSON.stringify of an object literal would lose.
const objectText = (entries: ReadonlyArray<readonly [string, string]>) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`
const j = (v: unknown) => JSON.stringify(v)

const EVENT_NAMES = ["message.sent", "message.delivered", "call.failed", "webhook.test", "contact.created", "campaign.paused"]

/** URLs: public ones that register, and every kind that must be refused. */
const urlArb = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom("93.184.215.14", "8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]"), alnum(0, 12)).map(([h, p]) => `https://${h}/${p}`) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "http://93.184.215.14/", "https://127.0.0.1/", "https://10.0.0.1/", "https://169.254.169.254/latest", "https://[::1]/",
      "https://[::ffff:127.0.0.1]/", "https://2130706433/", "https://0x7f.1/", "https://localhost/", "https://a.localhost/",
      "https://user:pw@93.184.215.14/", "ftp://93.184.215.14/", "/relative", "https://", "https://93.184.215.14:0/", "https://93.184.215.14:65536/",
      "https://93.184.215.14/\u0000", "https://93.184.215.14/\ud800", "javascript:alert(1)", "", "https://[fe80::1]/", "https://[fc00::1]/"
    )
  },
  { weight: 1, arbitrary: fc.integer({ min: 2000, max: 2100 }).map((n) => `https://93.184.215.14/${"a".repeat(n - 22)}`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) }
)

/** Retry policies that register, one of each strategy. */
const validRetryPolicy = fc.oneof(
  fc.record(
    { strategy: fc.constant("exponential"), max_attempts: fc.integer({ min: 1, max: 10 }), initial_delay_seconds: fc.integer({ min: 1, max: 3600 }), max_delay_seconds: fc.integer({ min: 1, max: 86_400 }) },
    { requiredKeys: ["strategy", "max_attempts"] }
  ),
  fc.record({ strategy: fc.constant("fixed"), max_attempts: fc.integer({ min: 1, max: 10 }), delay_seconds: fc.integer({ min: 1, max: 86_400 }) }),
  fc.record({ strategy: fc.constant("custom"), delays_seconds: fc.array(fc.integer({ min: 1, max: 86_400 }), { maxLength: 9 }) }),
  fc.constant(null)
)

/** Retry policies that break one rule or another. */
const badRetryPolicy = fc.oneof(
  fc.record({ strategy: fc.constant("exponential"), max_attempts: fc.constantFrom(-1, 0, 11, 2.5) }),
  fc.record({ strategy: fc.constant("exponential"), max_attempts: fc.constant(3), initial_delay_seconds: fc.constantFrom(0, 3601, "60") }),
  fc.record({ strategy: fc.constant("fixed"), max_attempts: fc.integer({ min: 1, max: 10 }), delay_seconds: fc.constantFrom(0, 86_401, null) }),
  fc.record({ strategy: fc.constant("fixed"), max_attempts: fc.constant(3) }),
  fc.record({ strategy: fc.constant("custom"), delays_seconds: fc.array(fc.integer({ min: 1, max: 86_400 }), { minLength: 10, maxLength: 12 }) }),
  fc.record({ strategy: fc.constant("custom"), delays_seconds: fc.constantFrom([0], [86_401], [1.5], ["60"]) }),
  fc.record({ strategy: fc.constantFrom("linear", "__proto__", ""), max_attempts: fc.constant(3) }),
  fc.record({ strategy: fc.constant("fixed"), max_attempts: fc.constant(3), delay_seconds: fc.constant(10), jitter: fc.constant(true) }),
  fc.constantFrom("exponential", 3, [], {})
)

/** A wrong-typed or hostile value for any field. */
const hostileValue = fc.oneof(
  fc.constantFrom("null", "true", "false", "0", "-0", "1e999", "-1e999", "1.5", `"${"9".repeat(30)}"`, "9".repeat(400), "[]", "{}", `"\\u0000"`, `"\\ud800"`, `{"__proto__":{"admin":true}}`, `{"constructor":{"prototype":{"x":1}}}`),
  fc.jsonValue({ maxDepth: 3 }).map(j),
  fc.string().map(j)
)

/** A registration that the API accepts: url and events, and any of the optional fields. */
const validEndpoint = fc.record(
  {
    url: fc.tuple(fc.constantFrom("93.184.215.14", "8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]"), alnum(0, 12)).map(([h, p]) => `https://${h}/${p}`),
    events: fc.oneof({ weight: 5, arbitrary: fc.uniqueArray(fc.constantFrom(...EVENT_NAMES), { minLength: 1, maxLength: 4 }) }, { weight: 1, arbitrary: fc.constant(["*"]) }),
    secret: fc.integer({ min: 24, max: 128 }).map((n) => "s".repeat(n)),
    active: fc.boolean(),
    description: fc.oneof(fc.string({ maxLength: 100 }).filter((d) => !/[\u0000\ud800-\udfff]/.test(d)), fc.constant(null)),
    timeout_seconds: fc.integer({ min: 1, max: 30 }),
    retry_policy: validRetryPolicy
  },
  { requiredKeys: ["url", "events"] }
)

/** A value that breaks the rules of one field in particular (or of any, for the hostile ones). */
const badValueFor: Record<string, fc.Arbitrary<string>> = {
  url: urlArb.filter((u) => !/^https:\/\/(93\.184\.215\.14|8\.8\.8\.8|1\.1\.1\.1|\[2606:4700:4700::1111\])\/[A-Za-z0-9]{0,12}$/.test(u)).map(j),
  events: fc.constantFrom(`["*"]`, `[]`, `["*","message.sent"]`, `["message.sent","message.sent"]`, `["nope.nope"]`, `"message.sent"`, `[42]`, `["__proto__"]`, `["Message.Sent"]`, j(Array(101).fill("message.sent"))),
  secret: fc.oneof(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 129, max: 140 })).map((n) => j("s".repeat(n))),
  active: fc.constantFrom(`"true"`, "1", "null", "0"),
  description: fc.constantFrom(j("d".repeat(513)), "7", `"a\\u0000b"`, `"a\\ud800b"`),
  timeout_seconds: fc.constantFrom("0", "31", "-5", "1.5", `"5"`, "null", "1e999"),
  retry_policy: badRetryPolicy.map(j)
}
const FIELDS = Object.keys(badValueFor)

type Entries = ReadonlyArray<readonly [string, string]>
/** One change that makes a registration invalid (or, for a duplicate of a valid key, maybe not). */
const mutation: fc.Arbitrary<(entries: Entries) => Entries> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...FIELDS).chain((f) => fc.oneof({ weight: 3, arbitrary: badValueFor[f]! }, { weight: 1, arbitrary: hostileValue }).map((v) => (es: Entries) => [...es.filter(([k]) => k !== f), [f, v] as const])) },
  { weight: 1, arbitrary: fc.constantFrom("url", "events").map((f) => (es: Entries) => es.filter(([k]) => k !== f)) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.oneof(fc.constantFrom("__proto__", "constructor", "prototype", "toString", "callback_url", "timeout_second", "headers", "rate_limit_per_second", "", "URL"), fc.string({ maxLength: 12 })), hostileValue)
      .map(([k, v]) => (es: Entries) => (FIELDS.includes(k) ? es : [...es, [k, v] as const]))
  },
  // A duplicate key: JSON.parse keeps the last one.
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("url", "events"), hostileValue).map(([k, v]) => (es: Entries) => [...es, [k, v] as const]) }
)

/** A register/replace body: valid, or valid but for one to three mutations. */
const endpointBodyText = fc
  .tuple(
    validEndpoint,
    fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 5, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) })
  )
  .map(([valid, mutations]) => objectText(mutations.reduce((es, m) => m(es), Object.entries(valid).map(([k, v]) => [k, j(v)] as const) as Entries)))

/** Nesting that a 64 KiB body can reach: arrays and objects, closed or not, alone or inside a field. */
const deepText = fc
  .tuple(fc.integer({ min: 10, max: 30_000 }), fc.constantFrom("array", "object", "unclosed", "inEvents", "inPolicy"))
  .map(([n, kind]) => {
    switch (kind) {
      case "array":
        return `${"[".repeat(n)}${"]".repeat(n)}`
      case "object":
        return `${"{\"a\":".repeat(Math.min(n, 10_000))}1${"}".repeat(Math.min(n, 10_000))}`
      case "unclosed":
        return "[".repeat(n)
      case "inEvents":
        return `{"url":"https://93.184.215.14/","events":${"[".repeat(Math.min(n, 20_000))}${"]".repeat(Math.min(n, 20_000))}}`
      default:
        return `{"url":"https://93.184.215.14/","events":["*"],"retry_policy":${"{\"a\":".repeat(Math.min(n, 8_000))}1${"}".repeat(Math.min(n, 8_000))}}`
    }
  })

/** A valid registration padded to a byte size around 64 KiB (multi-byte characters count as bytes). */
const sizedText = fc
  .tuple(fc.oneof(fc.integer({ min: MAX_BODY - 8, max: MAX_BODY + 8 }), fc.integer({ min: 60_000, max: 70_000 }), fc.constant(1024 * 1024)), fc.constantFrom("x", "€", "😀"))
  .map(([bytes, char]) => {
    const base = j({ url: "https://93.184.215.14/sized", events: ["*"], description: "" })
    const room = Math.max(0, bytes - Buffer.byteLength(base))
    return j({ url: "https://93.184.215.14/sized", events: ["*"], description: char.repeat(Math.floor(room / Buffer.byteLength(char))) })
  })

const bodyArb: fc.Arbitrary<Buffer | undefined> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 10, arbitrary: endpointBodyText.map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: fc.constantFrom("{}", "[]", "null", "42", "\"x\"", "true", "", " ", "{", "}", "{\"url\":", "undefined", "NaN", "'x'", "{\"a\":1,}").map((t) => Buffer.from(t)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(j(v) ?? "null")) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 200 })).map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: endpointBodyText.map((t) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(t)])) },
  { weight: 1, arbitrary: fc.constantFrom(`{"secret":"${"s".repeat(32)}","grace_period_seconds":0}`, `{"grace_period_seconds":-1}`, `{"grace_period_seconds":604801}`, `{"x":1}`).map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: deepText.map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: sizedText.map((t) => Buffer.from(t)) }
)

/**
 * Method, path and body together: mostly an operation of the API (its method and path, a body
 * aimed at it), so that requests get past routing and authentication to the decoding and the
 * commands; otherwise any method with any path.
 */
const targetArb = (w: FuzzWorld): fc.Arbitrary<{ method: string; path: string; body: Buffer | undefined }> => {
  const endpointBody: fc.Arbitrary<Buffer | undefined> = fc.oneof({ weight: 4, arbitrary: endpointBodyText.map((t) => Buffer.from(t)) }, { weight: 1, arbitrary: bodyArb })
  const id = idArb(w)
  const q = queryArb(w)
  const op = (method: string, path: fc.Arbitrary<string>, body: fc.Arbitrary<Buffer | undefined>) => fc.record({ method: fc.constant(method), path, body })
  const none = fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: bodyArb })
  const slash = fc.constantFrom("", "", "", "/")
  return fc.oneof(
    { weight: 3, arbitrary: op("GET", fc.tuple(slash, q).map(([s, q]) => `${BASE}${s}${q}`), none) },
    { weight: 5, arbitrary: op("POST", fc.tuple(slash, fc.oneof({ weight: 5, arbitrary: fc.constant("") }, { weight: 1, arbitrary: q })).map(([s, q]) => `${BASE}${s}${q}`), endpointBody) },
    { weight: 2, arbitrary: op("GET", id.map((i) => `${BASE}/${i}`), none) },
    { weight: 4, arbitrary: op("PUT", id.map((i) => `${BASE}/${i}`), endpointBody) },
    { weight: 1, arbitrary: op("DELETE", id.map((i) => `${BASE}/${i}`), none) },
    { weight: 1, arbitrary: op("POST", id.map((i) => `${BASE}/${i}/rotate-secret`), bodyArb) },
    { weight: 1, arbitrary: op("POST", id.map((i) => `${BASE}/${i}/test`), bodyArb) },
    { weight: 1, arbitrary: op("GET", fc.tuple(id, q).map(([i, q]) => `${BASE}/${i}/deliveries${q}`), none) },
    { weight: 1, arbitrary: op("GET", fc.tuple(id, q).map(([i, q]) => `${BASE}/${i}/stats${q}`), none) },
    { weight: 1, arbitrary: op("GET", q.map((q) => `/api/v1/event-types${q}`), none) },
    { weight: 6, arbitrary: fc.record({ method: methodArb, path: pathArb(w), body: bodyArb }) }
  )
}

export const requestArb = (w: FuzzWorld): fc.Arbitrary<FuzzRequest> =>
  fc
    .record({
      target: targetArb(w),
      host: hostArb,
      key: keyHeadersArb(w),
      contentType: contentTypeArb,
      idempotency: idempotencyArb,
      extra: extraHeadersArb,
      // One body in ten is streamed (chunked, no Content-Length).
      chunkedRoll: fc.integer({ min: 0, max: 9 })
    })
    .map(({ target: { method, path, body }, ...r }) => ({
      method,
      path,
      headers: [...r.host, ...r.key, ...(body === undefined ? [] : r.contentType), ...r.idempotency, ...r.extra],
      ...(body === undefined ? {} : { body }),
      chunked: body !== undefined && r.chunkedRoll === 0
    }))

// ---------------------------------------------------------------------------------------------
// Sending and judging one request

/** Sends one request over node:http; a connection the server closes on purpose yields `undefined`. */
export const send = (baseUrl: string, agent: http.Agent | false, r: FuzzRequest): Promise<FuzzResponse | { readonly error: string; readonly reset?: boolean }> =>
  new Promise((resolve) => {
    const url = new URL(baseUrl)
    const headers: Array<string> = []
    for (const [k, v] of r.headers) headers.push(k, v ?? url.host)
    if (r.body !== undefined) {
      if (r.chunked) headers.push("Transfer-Encoding", "chunked")
      else headers.push("Content-Length", String(r.body.length))
    }
    let req: http.ClientRequest
    try {
      req = http.request({ host: url.hostname, port: url.port, method: r.method, path: r.path, headers, agent }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }))
        res.on("error", (e) => resolve({ error: String(e) }))
      })
    } catch (e) {
      // node:http itself refuses some requests (a method or header it will not send): not the server's doing.
      resolve({ error: `client refused: ${String(e)}` })
      return
    }
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ error: String(e), reset: e.code === "ECONNRESET" }))
    // An answer that never comes is a failure of its own, not a hung run.
    req.setTimeout(ANSWER_TIMEOUT_MS, () => {
      resolve({ error: `no answer within ${ANSWER_TIMEOUT_MS} ms` })
      req.destroy()
    })
    if (r.body !== undefined && r.chunked) {
      for (let i = 0; i < r.body.length; i += 8192) req.write(r.body.subarray(i, i + 8192))
      req.end()
    } else req.end(r.body)
  })

const describeRequest = (r: FuzzRequest) => {
  const body = r.body === undefined ? "(no body)" : `${r.body.length} bytes${r.chunked ? " chunked" : ""}: ${r.body.toString("latin1").slice(0, 160)}`
  const headers = r.headers.map(([k, v = "(the server's)"]) => `${k}: ${v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v}`).join(" | ")
  return `${r.method} ${r.path.length > 200 ? `${r.path.slice(0, 200)}…(${r.path.length})` : r.path}\n  headers: ${headers}\n  body: ${body}`
}

const ANSWER_TIMEOUT_MS = 30_000

const JSON_TYPE = /^application\/json(\s*;.*)?$/i

/** The reasons an answer breaks the properties (empty: it is fine). */
export const judge = (r: FuzzRequest, res: FuzzResponse): Array<string> => {
  const problems: Array<string> = []
  const requestId = res.headers["x-request-id"]
  const contentType = res.headers["content-type"] ?? ""
  if (res.status >= 500) problems.push(`a ${res.status}`)
  const pathname = r.path.split("?")[0]!
  const hasBody = r.method !== "HEAD" && res.status !== 204 && res.status !== 304
  if (res.status >= 200 && res.status < 300) {
    if (pathname === "/api/v1/docs") {
      if (!/^text\/html/i.test(contentType)) problems.push(`content type ${contentType} for the reference page`)
      return problems
    }
    if (pathname === "/api/v1/docs/scalar.js") {
      if (!/^text\/javascript/i.test(contentType)) problems.push(`content type ${contentType} for the reference script`)
      return problems
    }
    if (!hasBody) {
      if (res.text !== "") problems.push("a body on a HEAD or 204 answer")
      if (res.status === 204 && typeof requestId !== "string") problems.push("no X-Request-Id")
      return problems
    }
    if (!JSON_TYPE.test(contentType)) problems.push(`content type ${JSON.stringify(contentType)}`)
    let json: any
    try {
      json = JSON.parse(res.text)
    } catch {
      return [...problems, "a 2xx body that is not JSON"]
    }
    if (pathname === "/healthz" || pathname === "/readyz" || pathname === "/api/v1/openapi.json") return problems
    if (json === null || typeof json !== "object" || !("data" in json) || typeof json.meta !== "object") problems.push("a 2xx without the { data, meta } envelope")
    else if (json.meta.request_id !== requestId) problems.push(`meta.request_id ${json.meta.request_id} ≠ X-Request-Id ${requestId}`)
    return problems
  }
  // Every other answer: the error envelope (headers only for HEAD).
  if (typeof requestId !== "string" || !/^req_[A-Za-z0-9_-]{16}$/.test(requestId)) problems.push(`X-Request-Id ${JSON.stringify(requestId)}`)
  if (!JSON_TYPE.test(contentType)) problems.push(`content type ${JSON.stringify(contentType)}`)
  if (!hasBody) return problems
  let json: any
  try {
    json = JSON.parse(res.text)
  } catch {
    return [...problems, "an error body that is not JSON"]
  }
  if (json === null || typeof json !== "object" || Object.keys(json).sort().join() !== "error,meta") return [...problems, "not the error envelope"]
  const { error, meta } = json
  if (typeof error !== "object" || error === null) return [...problems, "error is not an object"]
  if (Object.keys(error).some((k) => !["code", "message", "status", "details"].includes(k))) problems.push(`error fields ${Object.keys(error).join()}`)
  if (ERROR_STATUS[error.code] !== res.status) problems.push(`code ${error.code} with status ${res.status}`)
  if (error.status !== res.status) problems.push(`error.status ${error.status} ≠ ${res.status}`)
  if (typeof error.message !== "string" || error.message.length === 0) problems.push("no message")
  if (error.details !== undefined && (!Array.isArray(error.details) || error.details.some((d: any) => typeof d?.field !== "string" || typeof d?.expected !== "string"))) {
    problems.push("malformed details")
  }
  if (meta?.request_id !== requestId) problems.push(`meta.request_id ${meta?.request_id} ≠ X-Request-Id ${requestId}`)
  if (typeof meta?.timestamp !== "string" || Number.isNaN(Date.parse(meta.timestamp))) problems.push("meta.timestamp")
  if (res.status === 429 && res.headers["retry-after"] === undefined) problems.push("429 without Retry-After")
  if (/\bat .*\.(ts|js):\d+/.test(res.text)) problems.push("a stack trace in the body")
  return problems
}

// ---------------------------------------------------------------------------------------------
// The state around a batch

interface Snapshot {
  readonly endpoints: ReadonlyMap<string, string>
  readonly idempotency: ReadonlyMap<string, string>
  readonly endpointRecords: bigint
  readonly sourceRecords: bigint
}

/** Which state a 2xx answer may have changed: the endpoint ids it wrote, Idempotency-Keys it spent, test events it sent. */
interface Writes {
  readonly ids: Set<string>
  readonly idempotencyKeys: Set<string>
  endpointWrites: number
  testEvents: number
}

const WRITE_METHODS = new Set(["POST", "PUT", "DELETE"])

/**
 * The Idempotency-Key as the server reads it: Node trims each value and joins repeated lines with
 * ", ". node:http sends header values as latin1, except when an `Expect` header makes it send the
 * headers ahead of the body: then they go out as UTF-8, and the server reads each byte of that as
 * a character.
 */
const effectiveIdempotencyKey = (r: FuzzRequest) => {
  const asSent = r.headers.some(([k]) => k.toLowerCase() === "expect") ? (v: string) => Buffer.from(v, "utf8").toString("latin1") : (v: string) => v
  const values = r.headers.filter(([k]) => k.toLowerCase() === "idempotency-key").map(([, v]) => asSent(v ?? "").replace(/^[ \t]+|[ \t]+$/g, ""))
  return values.length === 0 ? undefined : values.join(", ")
}

const account = (r: FuzzRequest, res: FuzzResponse, writes: Writes) => {
  if (res.status < 200 || res.status >= 300 || !WRITE_METHODS.has(r.method)) return
  const pathname = r.path.split("?")[0]!
  const segments = pathname.split("/")
  let id: string | undefined
  try {
    id = segments[4] === undefined || segments[4] === "" ? undefined : decodeURIComponent(segments[4])
  } catch {
    id = segments[4]
  }
  if (/\/test\/?$/.test(pathname) && res.status === 202) {
    writes.testEvents++
    return
  }
  writes.endpointWrites++
  if (id !== undefined) writes.ids.add(id)
  try {
    const created = JSON.parse(res.text)?.data?.id
    if (typeof created === "string") writes.ids.add(created)
  } catch {
    // A 204 has no body.
  }
  const idempotencyKey = effectiveIdempotencyKey(r)
  if (idempotencyKey !== undefined) writes.idempotencyKeys.add(idempotencyKey)
}

const diffKeys = (a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>) =>
  [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k))

// ---------------------------------------------------------------------------------------------
// The run

export interface FuzzOptions {
  readonly runs: number
  readonly seed: number
  readonly batchSize: number
  readonly concurrency: number
  readonly log?: (line: string) => void
}

export interface FuzzStats {
  requests: number
  batches: number
  statuses: Record<string, number>
  clientErrors: number
  /** Requests sent again on a new connection (see above). */
  resent: number
  wallMs: number
  /** Time spent taking the snapshots around the batches. */
  snapshotMs: number
}

/** Creates the tenants, keys and endpoints the generators draw from. */
export const prepareFuzz = async (platform: Platform, tenant: string, otherTenant: string): Promise<FuzzWorld> => {
  const { key: liveKey } = await platform.createKey(tenant)
  const { key: publicKey } = await platform.createKey(tenant, "live", "public")
  const { key: testKey } = await platform.createKey(tenant, "test")
  const { key: revokedKey, keyId: revokedId } = await platform.createKey(tenant)
  await platform.sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${revokedId}`
  const { key: otherKey } = await platform.createKey(otherTenant)
  const register = async (key: string, n: number) => {
    const res = await platform.api("POST", BASE, { key, body: { url: `https://93.184.215.14/setup/${n}`, events: ["message.sent"] } })
    if (res.status !== 201) throw new Error(`setup registration failed: ${res.text}`)
    return res.json.data.id as string
  }
  const liveIds = []
  for (let i = 0; i < 6; i++) liveIds.push(await register(liveKey, i))
  const testId = await register(testKey, 100)
  const otherId = await register(otherKey, 200)
  await register(otherKey, 201)
  const deletedId = await register(liveKey, 300)
  if ((await platform.api("DELETE", `${BASE}/${deletedId}`, { key: liveKey })).status !== 204) throw new Error("setup delete failed")
  const cursorOf = async (key: string) => (await platform.api("GET", `${BASE}?limit=1`, { key })).json.meta.pagination.cursor as string
  return { liveKey, publicKey, testKey, revokedKey, otherKey, liveIds, testId, otherId, deletedId, cursors: [await cursorOf(liveKey), await cursorOf(otherKey)] }
}

/**
 * Runs `runs` batches of `batchSize` generated requests (so runs × batchSize requests), at most
 * `concurrency` in flight, and asserts the properties above; throws fast-check's report (seed,
 * path, the shrunk batch and what was wrong) on the first counterexample.
 */
export const runFuzz = async (platform: Platform, world: FuzzWorld, options: FuzzOptions): Promise<FuzzStats> => {
  const started = Date.now()
  const stats: FuzzStats = { requests: 0, batches: 0, statuses: {}, clientErrors: 0, resent: 0, wallMs: 0, snapshotMs: 0 }
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency })
  const topics = topicsFor(platform.topicPrefix)
  const admin = new Kafka({ clientId: "api-fuzz", brokers: brokers(), logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  const recordCount = async (topic: string) => (await admin.fetchTopicOffsets(topic)).reduce((s, p) => s + BigInt(p.high), 0n)
  const snapshot = async (): Promise<Snapshot> => {
    const t0 = Date.now()
    const endpoints = await platform.sql<Array<{ id: string; row: string }>>`SELECT id, row_to_json(e)::text AS row FROM endpoints e`
    const idempotency = await platform.sql<Array<{ k: string; row: string }>>`
      SELECT tenant_id || '/' || mode || '/' || key AS k, row_to_json(i)::text AS row FROM idempotency_keys i`
    const [endpointRecords, sourceRecords] = await Promise.all([recordCount(topics.endpointEvents.name), recordCount(topics.sourceEvents.name)])
    stats.snapshotMs += Date.now() - t0
    return {
      endpoints: new Map(endpoints.map((r) => [r.id, r.row])),
      idempotency: new Map(idempotency.map((r) => [r.k, r.row])),
      endpointRecords,
      sourceRecords
    }
  }

  let last: Snapshot | undefined
  const property = fc.asyncProperty(fc.array(requestArb(world), { minLength: options.batchSize, maxLength: options.batchSize }), async (batch) => {
    const before = await snapshot()
    const writes: Writes = { ids: new Set(), idempotencyKeys: new Set(), endpointWrites: 0, testEvents: 0 }
    const problems: Array<string> = []
    const sent_: Array<{ r: FuzzRequest; status: number | string }> = []
    let next = 0
    const worker = async () => {
      while (next < batch.length) {
        const r = batch[next++]!
        let res = await send(platform.baseUrl, agent, r)
        // A connection reset before any answer: mostly a kept-alive connection the server closed
        // as this request went out (after answering one whose body it had not read), which Node's
        // documentation advises to retry. Sent once more on a new connection, and counted: a
        // request the server drops every time still fails the property.
        if ("error" in res && res.reset) {
          stats.resent++
          res = await send(platform.baseUrl, false, r)
        }
        stats.requests++
        if ("error" in res) {
          stats.clientErrors++
          // The server answers and closes the connection, with a body it has not read still
          // arriving (which resets the connection, and may lose the answer), after headers over
          // 16 KiB (431), a body over 64 KiB (413) and a request without Host (400); other
          // requests must be answered.
          const mayClose = r.headers.some(([k, v]) => k === "X-Filler" && (v?.length ?? 0) > 16_000) || (r.body?.length ?? 0) > MAX_BODY ||
            (r.body !== undefined && !r.headers.some(([k]) => k === "Host"))
          if ((!mayClose || res.error.startsWith("no answer")) && !res.error.startsWith("client refused")) problems.push(`no answer (${res.error}) to\n${describeRequest(r)}`)
          continue
        }
        stats.statuses[res.status] = (stats.statuses[res.status] ?? 0) + 1
        if (effectiveIdempotencyKey(r) !== undefined) sent_.push({ r, status: res.status })
        const wrong = judge(r, res)
        if (wrong.length > 0) problems.push(`${wrong.join("; ")}\n${describeRequest(r)}\n  → ${res.status} ${res.headers["content-type"] ?? ""} ${res.text.slice(0, 300)}`)
        account(r, res, writes)
      }
    }
    await Promise.all(Array.from({ length: options.concurrency }, worker))
    stats.batches++
    if (problems.length > 0) throw new Error(problems.join("\n\n"))

    const after = await snapshot()
    last = after
    const changedRows = diffKeys(before.endpoints, after.endpoints).filter((id) => !writes.ids.has(id))
    if (changedRows.length > 0) problems.push(`endpoint rows changed with no 2xx write naming them: ${changedRows.join(", ")}`)
    const spent = diffKeys(before.idempotency, after.idempotency).filter((k) => !writes.idempotencyKeys.has(k.split("/").slice(2).join("/")))
    if (spent.length > 0) {
      const sentKeys = sent_.map(({ r, status }) => `${JSON.stringify(effectiveIdempotencyKey(r))} → ${status} ${r.method} ${r.path.slice(0, 80)}`).join("\n  ")
      problems.push(`Idempotency-Keys stored with no 2xx registration: ${spent.map((k) => JSON.stringify(k)).join(", ")}; the batch's keys:\n  ${sentKeys}`)
    }
    const appended = after.endpointRecords - before.endpointRecords
    if (appended > BigInt(writes.endpointWrites)) problems.push(`${appended} endpoint records appended for ${writes.endpointWrites} 2xx writes`)
    const sent = after.sourceRecords - before.sourceRecords
    if (sent !== BigInt(writes.testEvents)) problems.push(`${sent} source events published for ${writes.testEvents} accepted test events`)
    if (problems.length > 0) throw new Error(problems.join("\n"))
    if (options.log && stats.batches % 50 === 0) options.log(`${stats.batches} batches, ${stats.requests} requests, ${Math.round((Date.now() - started) / 1000)} s`)
  })

  try {
    // fc.check rather than fc.assert: the report names the problem and the seed without printing
    // the whole shrunk batch (its bodies reach 1 MiB).
    // No shrinking: the report already names each request that broke a property and its answer,
    // and every shrinking step would re-send a whole batch.
    const details = await fc.check(property, { numRuns: options.runs, seed: options.seed, endOnFailure: true })
    if (details.failed) {
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
      throw new Error(`api fuzz: a counterexample after ${details.numRuns} batches (seed ${details.seed}, path "${details.counterexamplePath}", shrunk ${details.numShrinks} times):\n${error}`)
    }
    // Once the projection has applied every record appended so far, the read model is still what
    // the last batch left: nothing a refusal wrote to the topic was waiting to be applied.
    await platform.projectionCaughtUp("endpointEvents")
    const settled = await snapshot()
    const late = last === undefined ? [] : diffKeys(last.endpoints, settled.endpoints)
    if (late.length > 0) throw new Error(`api fuzz: endpoint rows changed after the run, once the projection caught up: ${late.join(", ")}`)
  } finally {
    agent.destroy()
    await admin.disconnect()
    stats.wallMs = Date.now() - started
  }
  return stats
}
