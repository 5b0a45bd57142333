import { describe, expect, it } from "vitest"
import { ApiErrorClasses, codeOfClass, serviceUnavailable, statusOfClass, writesBusy } from "../src/api/ApiErrors.ts"
import { errorEnvelope } from "../src/server/Envelope.ts"

// API.md §2: each error code and the one status it is answered with.
const API_MD_STATUS: Record<string, number> = {
  INVALID_API_KEY: 401,
  INSUFFICIENT_PERMISSIONS: 403,
  VALIDATION_ERROR: 422,
  INVALID_WEBHOOK_URL: 422,
  INVALID_JSON: 400,
  INVALID_CURSOR: 400,
  MALFORMED_REQUEST: 400,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503
}

describe("the API's error classes", () => {
  it("declare each wire code once, with the status API.md gives it", () => {
    const declared = Object.fromEntries(ApiErrorClasses.map((c) => [codeOfClass(c), statusOfClass(c)]))
    expect(ApiErrorClasses.length).toBe(Object.keys(declared).length)
    expect(declared).toEqual(API_MD_STATUS)
  })

  it("are written as the error envelope with the status their class carries", () => {
    for (const Class of ApiErrorClasses) {
      const error = new (Class as any)({ message: "m", retryAfterSeconds: 7, details: [{ field: "f", expected: "e" }] })
      const { status, body, headers } = errorEnvelope("req_x", error)
      expect(status).toBe(statusOfClass(Class))
      expect(body.error).toMatchObject({ code: codeOfClass(Class), status: statusOfClass(Class), message: "m" })
      expect(headers["x-request-id"]).toBe("req_x")
      // Retry-After belongs to 429 and to a 503 that carries it (a full write queue), only as a header.
      expect("retry-after" in headers).toBe(codeOfClass(Class) === "RATE_LIMITED" || codeOfClass(Class) === "SERVICE_UNAVAILABLE")
      if ("retry-after" in headers) expect((headers as Record<string, string>)["retry-after"]).toBe("7")
      expect(JSON.stringify(body)).not.toContain("retryAfterSeconds")
    }
  })

  it("send Retry-After with a 503 only when it carries a delay", () => {
    const { headers } = errorEnvelope("req_x", serviceUnavailable())
    expect("retry-after" in headers).toBe(false)
    expect((errorEnvelope("req_x", writesBusy(1)).headers as Record<string, string>)["retry-after"]).toBe("1")
  })
})
