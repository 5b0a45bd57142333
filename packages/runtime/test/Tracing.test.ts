import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import { Effect, Layer, Logger, Option, References, Tracer } from "effect"
import { keepsTrace, parseOtlpHeaders, samplerOf, samplingTracer, tracedJsonLogger } from "../src/Tracing.ts"

/** The JSON lines `tracedJsonLogger` writes while `effect` runs. */
const linesOf = async (effect: Effect.Effect<unknown, unknown>, tracing = true) => {
  const lines: Array<Record<string, unknown>> = []
  const spy = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
    lines.push(JSON.parse(String(line)))
  })
  try {
    await Effect.runPromise(effect.pipe(
      Effect.provide(Layer.mergeAll(Logger.layer([tracedJsonLogger]), Layer.succeed(References.TracerEnabled, tracing)))
    ))
  } finally {
    spy.mockRestore()
  }
  return lines
}

describe("tracedJsonLogger", () => {
  afterEach(() => vi.restoreAllMocks())

  it("puts the current span's trace_id and span_id on a line logged inside it", async () => {
    let ids: { traceId: string; spanId: string } | undefined
    const lines = await linesOf(
      Effect.gen(function*() {
        const span = yield* Effect.currentSpan
        ids = { traceId: span.traceId, spanId: span.spanId }
        yield* Effect.logInfo("inside")
      }).pipe(Effect.withSpan("work"), Effect.andThen(Effect.logInfo("outside")))
    )
    expect(ids?.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(lines.map((l) => [l.message, l.trace_id, l.span_id])).toEqual([
      ["inside", ids!.traceId, ids!.spanId],
      ["outside", undefined, undefined]
    ])
    expect(lines[0]!.level).toBe("INFO")
  })

  it("a child span's line names the child, under the parent's trace", async () => {
    const seen: Array<string> = []
    const lines = await linesOf(
      Effect.gen(function*() {
        seen.push((yield* Effect.currentSpan).spanId)
        yield* Effect.logWarning("child")
      }).pipe(Effect.withSpan("child"), Effect.withSpan("parent"))
    )
    expect(lines[0]!.span_id).toBe(seen[0])
    expect(lines[0]!.trace_id).toMatch(/^[0-9a-f]{32}$/)
  })

  it("writes no ids when tracing is off (no-op spans)", async () => {
    const lines = await linesOf(Effect.logInfo("x").pipe(Effect.withSpan("work")), false)
    expect(lines).toHaveLength(1)
    expect(lines[0]).not.toHaveProperty("trace_id")
    expect(lines[0]).not.toHaveProperty("span_id")
  })
})

describe("sampling", () => {
  const spanOptions = (parent?: Tracer.AnySpan) => ({
    name: "s",
    parent: parent === undefined ? Option.none() : Option.some(parent),
    annotations: undefined as never,
    links: [],
    startTime: 0n,
    kind: "internal" as const,
    root: parent === undefined,
    sampled: parent?.sampled ?? true
  })
  const upstream = (sampled: boolean) => Tracer.externalSpan({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled })

  it("parentbased samplers follow the parent; roots follow the root sampler", () => {
    const on = samplingTracer(Tracer.nativeTracer, samplerOf("parentbased_always_off", undefined))
    expect(on.span(spanOptions(upstream(true))).sampled).toBe(true)
    expect(on.span(spanOptions(upstream(false))).sampled).toBe(false)
    expect(on.span(spanOptions()).sampled).toBe(false)
    const always = samplingTracer(Tracer.nativeTracer, samplerOf("always_on", undefined))
    expect(always.span(spanOptions(upstream(false))).sampled).toBe(true)
    const off = samplingTracer(Tracer.nativeTracer, samplerOf("always_off", undefined))
    expect(off.span(spanOptions(upstream(true))).sampled).toBe(false)
  })

  it("traceidratio decides on the trace id, and a dropped root keeps its trace id", () => {
    expect(keepsTrace("f".repeat(32), 0.5)).toBe(false)
    expect(keepsTrace("0".repeat(31) + "1", 0.5)).toBe(true)
    const half = samplingTracer(Tracer.nativeTracer, samplerOf("traceidratio", 0.5))
    const decisions = Array.from({ length: 400 }, () => {
      const span = half.span(spanOptions())
      expect(span.sampled).toBe(keepsTrace(span.traceId, 0.5))
      return span.sampled
    })
    expect(decisions.filter(Boolean).length).toBeGreaterThan(100)
    expect(decisions.filter((d) => !d).length).toBeGreaterThan(100)
  })

  it("reads OTEL_EXPORTER_OTLP_HEADERS", () => {
    expect(parseOtlpHeaders("api-key=a%20b, X-Team=ops")).toEqual({ "api-key": "a b", "x-team": "ops" })
    expect(parseOtlpHeaders("novalue")).toBeTypeOf("string")
  })
})
