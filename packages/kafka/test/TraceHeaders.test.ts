import { describe, expect, it } from "@effect/vitest"
import { traceContextOf, traceHeaders } from "../src/TraceHeaders.ts"

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
const SPAN = "00f067aa0ba902b7"

describe("TraceHeaders", () => {
  it("reads a traceparent and tracestate, as strings or buffers", () => {
    expect(traceContextOf({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: "congo=t61rcWkgMzE" })).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      sampled: true,
      traceState: "congo=t61rcWkgMzE"
    })
    expect(traceContextOf({ traceparent: Buffer.from(`00-${TRACE}-${SPAN}-00`) })).toEqual({ traceId: TRACE, spanId: SPAN, sampled: false })
  })

  it("refuses malformed contexts instead of failing", () => {
    for (
      const bad of [
        undefined,
        "",
        `00-${TRACE}-${SPAN}`,
        `00-${TRACE.toUpperCase()}-${SPAN}-01`,
        `00-${"0".repeat(32)}-${SPAN}-01`,
        `00-${TRACE}-${"0".repeat(16)}-01`,
        `ff-${TRACE}-${SPAN}-01`,
        `00-${TRACE}-${SPAN}-01-extra`,
        `00-${TRACE}-${SPAN}-1`
      ]
    ) {
      expect(traceContextOf(bad === undefined ? {} : { traceparent: bad }), String(bad)).toBeUndefined()
    }
    expect(traceContextOf(undefined)).toBeUndefined()
  })

  it("reads a later version by its first four fields", () => {
    expect(traceContextOf({ traceparent: `01-${TRACE}-${SPAN}-01-future` })?.spanId).toBe(SPAN)
  })

  it("round-trips what it writes", () => {
    const headers = traceHeaders({ traceId: TRACE, spanId: SPAN, sampled: false }, "a=b")
    expect(headers).toEqual({ traceparent: `00-${TRACE}-${SPAN}-00`, tracestate: "a=b" })
    expect(traceContextOf(headers)).toEqual({ traceId: TRACE, spanId: SPAN, sampled: false, traceState: "a=b" })
    expect(traceHeaders({ traceId: TRACE, spanId: SPAN, sampled: true })).toEqual({ traceparent: `00-${TRACE}-${SPAN}-01` })
  })
})
