import { Schema } from "effect"

/** One problem with the request, as listed in `error.details` (API.md §2). */
export const ErrorDetail = Schema.Struct({
  field: Schema.String,
  value: Schema.optionalKey(Schema.Unknown),
  expected: Schema.String
})
export type ErrorDetail = typeof ErrorDetail.Type

const Details = Schema.optionalKey(Schema.Array(ErrorDetail))

/*
 * Every error the API answers with, one class per error code (API.md §2). Each class carries its
 * HTTP status as its `httpApiStatus` annotation and its wire code as a tagged literal; Api.ts
 * derives each operation's declared error responses from these classes, and server/Envelope.ts
 * writes any of them as the error envelope. Handlers fail only with these.
 */

export class InvalidApiKey extends Schema.TaggedError<InvalidApiKey>()("InvalidApiKey", {
  code: Schema.tag("INVALID_API_KEY"),
  message: Schema.String
}, { httpApiStatus: 401 }) {}

export class InsufficientPermissions extends Schema.TaggedError<InsufficientPermissions>()("InsufficientPermissions", {
  code: Schema.tag("INSUFFICIENT_PERMISSIONS"),
  message: Schema.String
}, { httpApiStatus: 403 }) {}

export class ValidationError extends Schema.TaggedError<ValidationError>()("ValidationError", {
  code: Schema.tag("VALIDATION_ERROR"),
  message: Schema.String,
  details: Details
}, { httpApiStatus: 422 }) {}

export class InvalidWebhookUrl extends Schema.TaggedError<InvalidWebhookUrl>()("InvalidWebhookUrl", {
  code: Schema.tag("INVALID_WEBHOOK_URL"),
  message: Schema.String,
  details: Details
}, { httpApiStatus: 422 }) {}

export class InvalidJson extends Schema.TaggedError<InvalidJson>()("InvalidJson", {
  code: Schema.tag("INVALID_JSON"),
  message: Schema.String
}, { httpApiStatus: 400 }) {}

export class InvalidCursor extends Schema.TaggedError<InvalidCursor>()("InvalidCursor", {
  code: Schema.tag("INVALID_CURSOR"),
  message: Schema.String
}, { httpApiStatus: 400 }) {}

/** A request Node's HTTP parser refused (bad request line or framing); never reaches a route. */
export class MalformedRequest extends Schema.TaggedError<MalformedRequest>()("MalformedRequest", {
  code: Schema.tag("MALFORMED_REQUEST"),
  message: Schema.String
}, { httpApiStatus: 400 }) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  code: Schema.tag("NOT_FOUND"),
  message: Schema.String
}, { httpApiStatus: 404 }) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  code: Schema.tag("PAYLOAD_TOO_LARGE"),
  message: Schema.String
}, { httpApiStatus: 413 }) {}

/** Headers over Node's 16 KiB limit; never reaches a route. */
export class HeadersTooLarge extends Schema.TaggedError<HeadersTooLarge>()("HeadersTooLarge", {
  code: Schema.tag("HEADERS_TOO_LARGE"),
  message: Schema.String
}, { httpApiStatus: 431 }) {}

export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  code: Schema.tag("RATE_LIMITED"),
  message: Schema.String,
  /** Sent as the `Retry-After` header, never in the body. */
  retryAfterSeconds: Schema.Int
}, { httpApiStatus: 429 }) {}

export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", {
  code: Schema.tag("INTERNAL_ERROR"),
  message: Schema.String
}, { httpApiStatus: 500 }) {}

export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  code: Schema.tag("SERVICE_UNAVAILABLE"),
  message: Schema.String,
  /** Sent as the `Retry-After` header when the API itself is busy, never in the body. */
  retryAfterSeconds: Schema.optionalKey(Schema.Int)
}, { httpApiStatus: 503 }) {}

export const ApiErrorClasses = [
  InvalidApiKey,
  InsufficientPermissions,
  ValidationError,
  InvalidWebhookUrl,
  InvalidJson,
  InvalidCursor,
  MalformedRequest,
  NotFound,
  PayloadTooLarge,
  HeadersTooLarge,
  RateLimited,
  InternalError,
  ServiceUnavailable
] as const

export type ApiErrorClass = (typeof ApiErrorClasses)[number]
export type ApiError = InstanceType<ApiErrorClass>

export const isApiError = (u: unknown): u is ApiError => ApiErrorClasses.some((c) => u instanceof c)

/** The HTTP status a class declares (its `httpApiStatus` annotation). */
export const statusOfClass = (c: ApiErrorClass): number => c.ast.annotations!.httpApiStatus as number

/** The wire code a class declares. */
export const codeOfClass = <C extends ApiErrorClass>(c: C): C["fields"]["code"]["schema"]["literal"] => c.fields.code.schema.literal

export const statusOf = (error: ApiError): number => statusOfClass(error.constructor as ApiErrorClass)

export const invalidApiKey = () => new InvalidApiKey({ message: "The X-API-Key header is missing or not a valid API key." })
export const insufficientPermissions = () =>
  new InsufficientPermissions({ message: "This API key is read-only; writes need a secret key." })
export const validationError = (details: ReadonlyArray<ErrorDetail>, message = "The request is invalid.") =>
  new ValidationError({ message, details })
export const invalidJson = (message: string) => new InvalidJson({ message })
export const invalidCursor = () => new InvalidCursor({ message: "The cursor was not produced by this API for this key's scope." })
export const invalidWebhookUrl = (reason: string, value: string) =>
  new InvalidWebhookUrl({ message: reason, details: [{ field: "url", value, expected: "a public https:// URL" }] })
export const notFound = (what = "The requested resource was not found.") => new NotFound({ message: what })
/** Unknown, deleted, another tenant's or mode's, or malformed: one answer for all (API.md §2). */
export const endpointNotFound = () => notFound("No webhook endpoint with this id.")
export const payloadTooLarge = () => new PayloadTooLarge({ message: "The request body is larger than 64 KiB." })
export const headersTooLarge = () => new HeadersTooLarge({ message: "The request headers are larger than 16 KiB." })
export const malformedRequest = () => new MalformedRequest({ message: "The request is not valid HTTP/1.1." })
export const rateLimited = (retryAfterSeconds: number) =>
  new RateLimited({ message: "Too many requests for this API key; retry after the Retry-After delay.", retryAfterSeconds })
/** Too many lookups of unknown keys from one client address; says nothing about the key sent. */
export const addressRateLimited = (retryAfterSeconds: number) =>
  new RateLimited({ message: "Too many requests from this address; retry after the Retry-After delay.", retryAfterSeconds })
export const serviceUnavailable = () =>
  new ServiceUnavailable({ message: "A backing service is unavailable; the request had no effect. Retry later." })
/** A write whose produce failed or timed out: it may or may not be recorded. */
export const writeOutcomeUnknown = () =>
  new ServiceUnavailable({
    message: "A backing service is unavailable; the write may or may not have taken effect. Retry with the same Idempotency-Key."
  })
/** The write queue is full: answered at once, before anything is written. */
export const writesBusy = (retryAfterSeconds: number) =>
  new ServiceUnavailable({ message: "Too many writes in flight; the request had no effect. Retry after the Retry-After delay.", retryAfterSeconds })
export const internalError = () => new InternalError({ message: "An unexpected error occurred." })
