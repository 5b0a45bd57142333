import { Schema } from "effect"

/**
 * Custom headers an endpoint adds to every delivery: the rules of their names and values, shared
 * by the API (which refuses a bad entry) and the dispatcher (which never lets one override a
 * header it sets itself).
 */

export const MAX_CUSTOM_HEADERS = 20
export const MAX_HEADER_NAME_CHARS = 64
export const MAX_HEADER_VALUE_CHARS = 1024

/** An RFC 9110 token (`tchar`s), 1–64 characters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/
/** Printable ASCII (space to tilde): no control characters, so no CR or LF. */
const PRINTABLE = /^[\x20-\x7e]{0,1024}$/

/** Names the platform sets itself, or that change how the request travels; compared lower-cased. */
export const RESERVED_HEADER_NAMES: ReadonlyArray<string> = [
  "host",
  "content-length",
  "content-type",
  "transfer-encoding",
  "connection",
  "user-agent",
  "traceparent"
]
/** Prefixes of names the platform owns (its own headers and the Standard Webhooks ones). */
export const RESERVED_HEADER_PREFIXES: ReadonlyArray<string> = ["x-devotel-", "webhook-"]

export const isReservedHeaderName = (name: string): boolean => {
  const lower = name.toLowerCase()
  return RESERVED_HEADER_NAMES.includes(lower) || RESERVED_HEADER_PREFIXES.some((p) => lower.startsWith(p))
}

const HEADER_NAME_EXPECTED = `an HTTP header name (RFC 9110 token) of 1–${MAX_HEADER_NAME_CHARS} characters, ` +
  `not one the platform sets (${RESERVED_HEADER_NAMES.join(", ")}, x-devotel-*, webhook-*)`
const HEADER_VALUE_EXPECTED = `printable ASCII of at most ${MAX_HEADER_VALUE_CHARS} characters (no CR, LF or other control characters)`

/** What is wrong with one entry, or undefined when it may be sent; `seen` holds the lower-cased names before it. */
const entryProblem = (name: string, value: string, seen: Set<string>): string | undefined => {
  if (!TOKEN.test(name) || isReservedHeaderName(name)) return `Expected ${HEADER_NAME_EXPECTED}`
  if (seen.has(name.toLowerCase())) return "Expected a header name not already given in another case (names are case-insensitive)"
  if (!PRINTABLE.test(value)) return `Expected ${HEADER_VALUE_EXPECTED}`
  return undefined
}

/**
 * The `headers` of a POST or PUT: at most 20 entries, each checked on its own, so every bad entry
 * is one problem at `headers.<name>` (a key schema would report a bad name as an unknown field).
 */
export const CustomHeaders = Schema.Record(Schema.String, Schema.String).annotate({
  description: `Headers added to every delivery: at most ${MAX_CUSTOM_HEADERS}; names are RFC 9110 tokens of at most ` +
    `${MAX_HEADER_NAME_CHARS} characters, and not one the platform sets (${RESERVED_HEADER_NAMES.join(", ")}, x-devotel-*, ` +
    `webhook-*; compared case-insensitively); values are ${HEADER_VALUE_EXPECTED}.`,
  expected: `an object of at most ${MAX_CUSTOM_HEADERS} header names and string values`
}).check(
  Schema.isMaxProperties(MAX_CUSTOM_HEADERS, { expected: `an object of at most ${MAX_CUSTOM_HEADERS} headers` }),
  Schema.makeFilter((headers: Readonly<Record<string, string>>) => {
    const seen = new Set<string>()
    const issues: Array<Schema.FilterIssue> = []
    for (const [name, value] of Object.entries(headers)) {
      const problem = entryProblem(name, value, seen)
      if (problem !== undefined) issues.push({ path: [name], issue: problem })
      seen.add(name.toLowerCase())
    }
    return issues
  })
)

/** The headers of an endpoint as stored in its events: any string map (the API checked the rules). */
export const StoredHeaders = Schema.Record(Schema.String, Schema.String)
export type StoredHeaders = typeof StoredHeaders.Type

/**
 * The custom headers to put on a delivery: the endpoint's entries, minus any reserved name (the
 * API refuses them; this keeps an event written by other means from overriding a platform header).
 */
export const deliverableHeaders = (headers: StoredHeaders | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  if (headers === undefined) return out
  const seen = new Set<string>()
  for (const [name, value] of Object.entries(headers)) {
    if (entryProblem(name, value, seen) === undefined) out[name] = value
    seen.add(name.toLowerCase())
  }
  return out
}
