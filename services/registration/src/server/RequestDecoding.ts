import { schemaProblems } from "@orbit/domain"
import { ByteSize, Effect, Schema, type SchemaIssue } from "effect"
import { HttpIncomingMessage, type HttpServerRequest } from "effect/http"
import { type ErrorDetail, invalidJson, payloadTooLarge, validationError } from "../api/ApiErrors.ts"

export const MAX_BODY_BYTES = 64 * 1024

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let current = input
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined
    current = (current as Record<PropertyKey, unknown>)[key]
  }
  return current
}

const fieldName = (path: ReadonlyArray<PropertyKey>) =>
  path.reduce<string>((acc, k) => (typeof k === "number" ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), "")

const PREVIEW_CHARS = 256
const PREVIEW_DEPTH = 16

/** Whether `value` nests deeper than `depth` levels (bounded work: stops at the limit). */
const nestsDeeper = (value: unknown, depth: number): boolean => {
  if (value === null || typeof value !== "object") return false
  if (depth === 0) return true
  for (const child of Object.values(value)) if (nestsDeeper(child, depth - 1)) return true
  return false
}

/**
 * Echoed values are capped so an error response never grows with hostile input, and deeply
 * nested values (a 64 KiB body can nest ~30 000 levels) are never walked recursively, which
 * would overflow the stack in `JSON.stringify` and turn a 422 into a 500.
 */
const preview = (value: unknown): unknown => {
  if (typeof value === "string") return value.length > PREVIEW_CHARS ? `${value.slice(0, PREVIEW_CHARS)}…` : value
  if (value !== null && typeof value === "object") {
    if (nestsDeeper(value, PREVIEW_DEPTH)) return `(${Array.isArray(value) ? "array" : "object"} nested too deeply to show)`
    const json = JSON.stringify(value)
    return json.length > PREVIEW_CHARS ? `${json.slice(0, PREVIEW_CHARS)}…` : value
  }
  return value
}

/** Schema issues → one `details` entry per problem: field path, the value sent, what was expected. */
export const issueDetails = (issue: SchemaIssue.Issue, input: unknown): Array<ErrorDetail> => {
  const seen = new Set<string>()
  const details: Array<ErrorDetail> = []
  for (const { path: keys, message } of schemaProblems(issue)) {
    const field = fieldName(keys) || "body"
    if (seen.has(field)) continue
    seen.add(field)
    const value = valueAt(input, keys)
    const expected = message === "Missing key"
      ? "a value (this field is required)"
      : message === "Expected no excess property"
      ? "no such field (unknown fields are not accepted)"
      : message.replace(/^Expected /, "")
    details.push(value === undefined ? { field, expected } : { field, value: preview(value), expected })
  }
  return details
}

/** Decodes strictly: every problem is reported, unknown fields are errors. */
export const decodeStrict = <S extends Schema.Decoder<unknown>>(schema: S, input: unknown) =>
  Schema.decodeUnknownEffect(schema)(input, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => validationError(issueDetails(e.issue, input)))
  )

/** Whether the request has a body at all (for routes whose body is optional). */
export const hasBody = (request: HttpServerRequest.HttpServerRequest) =>
  (request.headers["content-length"] !== undefined && request.headers["content-length"] !== "0") ||
  request.headers["transfer-encoding"] !== undefined

/** Reads a JSON body: JSON content type, at most 64 KiB, well-formed. */
export const readJsonBody = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    const contentType = request.headers["content-type"] ?? ""
    if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(contentType)) {
      return yield* invalidJson("The request body must be JSON, sent with Content-Type: application/json.")
    }
    const length = Number(request.headers["content-length"] ?? "0")
    if (length > MAX_BODY_BYTES) return yield* payloadTooLarge()
    const text = yield* request.text.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_BODY_BYTES)),
      Effect.mapError((e) =>
        e.reason._tag === "RequestParseError" && e.reason.reason === "BodyTooLarge"
          ? payloadTooLarge()
          : invalidJson("The request body could not be read.")
      )
    )
    if (Buffer.byteLength(text) > MAX_BODY_BYTES) return yield* payloadTooLarge()
    try {
      return JSON.parse(text) as unknown
    } catch {
      return yield* invalidJson("The request body is not valid JSON.")
    }
  })
