/** attemptRow, the pure mapping of an attempt event to its row (no broker, no Postgres). */
import { describe, expect, it } from "vitest"
import { attemptRow } from "../src/AttemptProjection.ts"
import { attempted } from "./attempted.ts"

describe("attemptRow (pure)", () => {
  it("maps the event to a row, normalising instants", () => {
    const e = attempted("wh_x", { occurred_at: "2026-11-27T10:00:00.123456+01:00", next_attempt_at: null })
    expect(attemptRow(e)).toMatchObject({
      id: e.event_id,
      endpoint_id: "wh_x",
      occurred_at: "2026-11-27T09:00:00.123Z",
      next_attempt_at: null,
      http_status: 503
    })
  })

  it("keeps the attempt's trace id, and only a trace id", () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    expect(attemptRow(attempted("wh_x", { trace_id: traceId }))).toMatchObject({ trace_id: traceId })
    expect(attemptRow(attempted("wh_x"))).toMatchObject({ trace_id: null })
    expect(attemptRow(attempted("wh_x", { trace_id: "x".repeat(5000) }))).toMatchObject({ trace_id: null })
  })

  it("refuses what Postgres would reject", () => {
    expect(attemptRow(attempted("wh_x", { occurred_at: "yesterday" }))).toHaveProperty("poison")
    expect(attemptRow(attempted("wh_x", { occurred_at: "1" }))).toHaveProperty("poison")
    expect(attemptRow(attempted("wh_x", { next_attempt_at: "2026-13-01T00:00:00Z" }))).toHaveProperty("poison")
    expect(attemptRow(attempted("wh_x", { duration_ms: 2 ** 31 }))).toHaveProperty("poison")
    expect(attemptRow(attempted("wh_x", { error_message: "a\u0000b" }))).toHaveProperty("poison")
  })
})
