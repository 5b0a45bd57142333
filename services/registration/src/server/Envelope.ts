import { randomFillSync } from "node:crypto"
import { HttpServerResponse } from "effect/http"
import { type ApiError, statusOf } from "../api/ApiErrors.ts"

// Request ids are random and of one fixed length: a counter would tell any client how much traffic
// the platform serves, and a varying length would make otherwise identical responses differ in
// size. Randomness is drawn 4 KiB at a time so each id costs a slice, not a syscall.
const ID_BYTES = 12
const pool = Buffer.alloc(ID_BYTES * 341)
let poolOffset = pool.length
export const newRequestId = () => {
  if (poolOffset + ID_BYTES > pool.length) {
    randomFillSync(pool)
    poolOffset = 0
  }
  const id = pool.toString("base64url", poolOffset, poolOffset + ID_BYTES)
  poolOffset += ID_BYTES
  return `req_${id}`
}

const meta = (requestId: string) => ({ request_id: requestId, timestamp: new Date().toISOString() })

export interface Pagination {
  readonly cursor: string | null
  readonly has_more: boolean
}

// The JSON text goes to the socket as a string: no byte array is made of it first, per response.
const json = (value: unknown, status: number, headers: Record<string, string>) => {
  const body = JSON.stringify(value)
  return HttpServerResponse.raw(body, { status, headers, contentType: "application/json", contentLength: Buffer.byteLength(body) })
}

/** `{ data, meta }` (API.md §2), with `X-Request-Id` equal to `meta.request_id`. */
export const success = (
  requestId: string,
  data: unknown,
  options: { status?: number; pagination?: Pagination; headers?: Record<string, string> } = {}
) =>
  json(
    {
      data,
      meta: options.pagination ? { ...meta(requestId), pagination: options.pagination } : meta(requestId)
    },
    options.status ?? 200,
    { "x-request-id": requestId, ...options.headers }
  )

/** The single place where an ApiError becomes the error envelope (API.md §2) and its headers. */
export const errorEnvelope = (requestId: string, error: ApiError) => {
  const status = statusOf(error)
  return {
    status,
    body: {
      error: {
        code: error.code,
        message: error.message,
        status,
        ...("details" in error && error.details ? { details: error.details } : {})
      },
      meta: meta(requestId)
    },
    headers: {
      "x-request-id": requestId,
      ...((error._tag === "RateLimited" || error._tag === "ServiceUnavailable") && error.retryAfterSeconds !== undefined
        ? { "retry-after": String(error.retryAfterSeconds) }
        : {})
    }
  }
}

export const failure = (requestId: string, error: ApiError) => {
  const { status, body, headers } = errorEnvelope(requestId, error)
  return json(body, status, headers)
}

export const noContent = (requestId: string) =>
  HttpServerResponse.empty({ status: 204, headers: { "x-request-id": requestId } })

/**
 * The ERROR line of a request that failed in a way no route maps to an answer (it gets
 * `500 INTERNAL_ERROR`): a fault of this service, not of a dependency (those answer 503).
 */
export const UNHANDLED =
  "unhandled error: the registration service answered 500 INTERNAL_ERROR. A bug in this service, not a dependency: " +
  "report it with this line (request_id and cause)"
