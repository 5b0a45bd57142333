import { Schema } from "effect"

/** One problem with the request, as listed in `error.details` (API.md §2). */
export const ErrorDetail = Schema.Struct({
  field: Schema.String,
  value: Schema.optionalKey(Schema.Unknown),
  expected: Schema.String
})
export type ErrorDetail = typeof ErrorDetail.Type

/**
 * Every error the API can answer with. The envelope mapping lives in one place
 * (server/Envelope.ts); handlers only fail with these.
 */
export class ApiError extends Schema.TaggedError<ApiError>()("ApiError", {
  code: Schema.Literals([
    "INVALID_API_KEY",
    "INSUFFICIENT_PERMISSIONS",
    "VALIDATION_ERROR",
    "INVALID_JSON",
    "INVALID_CURSOR",
    "INVALID_WEBHOOK_URL",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "HEADERS_TOO_LARGE",
    "MALFORMED_REQUEST",
    "RATE_LIMITED",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_ERROR"
  ]),
  status: Schema.Int,
  message: Schema.String,
  details: Schema.optionalKey(Schema.Array(ErrorDetail)),
  /** Sent as the `Retry-After` header (429), never in the body. */
  retryAfterSeconds: Schema.optionalKey(Schema.Int)
}) {}

export const invalidApiKey = () =>
  new ApiError({ code: "INVALID_API_KEY", status: 401, message: "The X-API-Key header is missing or not a valid API key." })
export const insufficientPermissions = () =>
  new ApiError({ code: "INSUFFICIENT_PERMISSIONS", status: 403, message: "This API key is read-only; writes need a secret key." })
export const validationError = (details: ReadonlyArray<ErrorDetail>, message = "The request is invalid.") =>
  new ApiError({ code: "VALIDATION_ERROR", status: 422, message, details })
export const invalidJson = (message: string) => new ApiError({ code: "INVALID_JSON", status: 400, message })
export const invalidCursor = () =>
  new ApiError({ code: "INVALID_CURSOR", status: 400, message: "The cursor was not produced by this API for this key's scope." })
export const invalidWebhookUrl = (reason: string, value: string) =>
  new ApiError({
    code: "INVALID_WEBHOOK_URL",
    status: 422,
    message: reason,
    details: [{ field: "url", value, expected: "a public https:// URL" }]
  })
export const notFound = (what = "The requested resource was not found.") =>
  new ApiError({ code: "NOT_FOUND", status: 404, message: what })
export const payloadTooLarge = () =>
  new ApiError({ code: "PAYLOAD_TOO_LARGE", status: 413, message: "The request body is larger than 64 KiB." })
export const headersTooLarge = () =>
  new ApiError({ code: "HEADERS_TOO_LARGE", status: 431, message: "The request headers are larger than 16 KiB." })
export const malformedRequest = () =>
  new ApiError({ code: "MALFORMED_REQUEST", status: 400, message: "The request is not valid HTTP/1.1." })
export const rateLimited = (retryAfterSeconds: number) =>
  new ApiError({
    code: "RATE_LIMITED",
    status: 429,
    message: "Too many requests for this API key; retry after the Retry-After delay.",
    retryAfterSeconds
  })
export const serviceUnavailable = () =>
  new ApiError({
    code: "SERVICE_UNAVAILABLE",
    status: 503,
    message: "A backing service is unavailable; the request had no effect. Retry later."
  })
export const internalError = () =>
  new ApiError({ code: "INTERNAL_ERROR", status: 500, message: "An unexpected error occurred." })
