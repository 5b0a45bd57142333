import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { HttpBody } from "effect/http"
import { OtlpSerialization, type OtlpTracer } from "effect/observability"
import { encodeTraces, protobufSerialization } from "../src/OtlpProtobuf.ts"

type TraceData = OtlpTracer.TraceData
type Span = TraceData["resourceSpans"][number]["scopeSpans"][number]["spans"][number]

/** The body a serialization layer makes of `data`. */
const bodyOf = (layer: typeof OtlpSerialization.layerProtobuf, data: TraceData): HttpBody.HttpBody =>
  Effect.runSync(
    Effect.gen(function*() {
      const serialization = yield* OtlpSerialization.OtlpSerialization
      return serialization.traces(data)
    }).pipe(Effect.provide(layer))
  )

/** Effect's own protobuf encoding of `data`: the reference. */
const effectBytes = (data: TraceData): Uint8Array => {
  const body = bodyOf(OtlpSerialization.layerProtobuf, data)
  if (body._tag !== "Uint8Array") throw new Error(`unexpected body ${body._tag}`)
  return body.body
}

const hex = (n: number, seed: number) => Array.from({ length: n }, (_, i) => ((seed * 31 + i * 7) % 16).toString(16)).join("")

const span = (i: number, overrides: Partial<Span> = {}): Span => ({
  traceId: hex(32, i),
  spanId: hex(16, i + 1),
  parentSpanId: i % 2 === 0 ? undefined : hex(16, i + 2),
  name: `delivery.attempt ${i}`,
  kind: i % 6,
  startTimeUnixNano: String(1_796_655_631_076_494_000n + BigInt(i)),
  endTimeUnixNano: String(1_796_655_631_349_385_000n + BigInt(i) * 1_000_003n),
  attributes: [
    { key: "http.request.method", value: { stringValue: "POST" } },
    { key: "orbit.attempt", value: { intValue: i } },
    { key: "http.response.status_code", value: { intValue: 200 } }
  ],
  droppedAttributesCount: 0,
  events: [],
  droppedEventsCount: 0,
  status: { code: 1 },
  links: [],
  droppedLinksCount: 0,
  ...overrides
})

const traces = (spans: Array<Span>): TraceData => ({
  resourceSpans: [{
    resource: {
      attributes: [
        { key: "service.name", value: { stringValue: "dispatcher" } },
        { key: "telemetry.sdk.language", value: { stringValue: "nodejs" } }
      ],
      droppedAttributesCount: 0
    },
    scopeSpans: [{ scope: { name: "dispatcher" }, spans }]
  }]
})

describe("encodeTraces", () => {
  it("writes Effect's bytes for the spans the services export", () => {
    const data = traces([span(0), span(1), span(2, { status: { code: 2, message: "HTTP 500" } })])
    expect(Buffer.from(encodeTraces(data)).equals(Buffer.from(effectBytes(data)))).toBe(true)
  })

  it("writes Effect's bytes for every attribute type, events, links, drop counts and non-ASCII text", () => {
    const data: TraceData = {
      resourceSpans: [{
        resource: { attributes: [{ key: "service.name", value: { stringValue: "registration" } }], droppedAttributesCount: 3 },
        schemaUrl: "https://opentelemetry.io/schemas/1.24.0",
        scopeSpans: [{
          scope: { name: "orbit", version: "1.0.0" },
          schemaUrl: "https://example.test/schema",
          spans: [span(1, {
            name: "prüfung — 検証 ✓ 🚀",
            attributes: [
              { key: "s", value: { stringValue: "" } },
              { key: "b", value: { boolValue: true } },
              { key: "f", value: { boolValue: false } },
              { key: "zero", value: { intValue: 0 } },
              { key: "negative", value: { intValue: -42 } },
              { key: "large", value: { intValue: 2 ** 40 + 7 } },
              { key: "int64 as text", value: { intValue: "-9223372036854775808" } },
              { key: "double", value: { doubleValue: 3.25 } },
              { key: "nan", value: { doubleValue: Number.NaN } },
              { key: "array", value: { arrayValue: { values: [{ stringValue: "a" }, { intValue: 1 }, { arrayValue: { values: [] } }] } } },
              { key: "kvlist", value: { kvlistValue: { values: [{ key: "inner", value: { boolValue: false } }] } } },
              { key: "bytes", value: { bytesValue: new Uint8Array([0, 1, 254, 255]) } }
            ],
            droppedAttributesCount: 2,
            events: [
              { name: "exception", timeUnixNano: "1796655631349385001", attributes: [{ key: "exception.message", value: { stringValue: "boom" } }], droppedAttributesCount: 0 },
              { name: "empty", timeUnixNano: "0", attributes: [], droppedAttributesCount: 1 }
            ],
            droppedEventsCount: 4,
            links: [{ traceId: hex(32, 9), spanId: hex(16, 9), attributes: [{ key: "k", value: { stringValue: "v" } }], droppedAttributesCount: 5 }],
            droppedLinksCount: 6,
            status: { code: 2, message: "Ärger" }
          })]
        }]
      }]
    }
    expect(Buffer.from(encodeTraces(data)).equals(Buffer.from(effectBytes(data)))).toBe(true)
  })

  it("writes Effect's bytes when lengths need two and three bytes and the buffer grows", () => {
    const long = "x".repeat(200)
    const longer = "y".repeat(20_000)
    const spans = Array.from({ length: 300 }, (_, i) =>
      span(i, {
        attributes: [
          { key: "long", value: { stringValue: long } },
          ...(i === 7 ? [{ key: "longer", value: { stringValue: longer } }] : [])
        ]
      }))
    const data = traces(spans)
    const ours = encodeTraces(data)
    expect(ours.length).toBeGreaterThan(16 * 1024 * 4)
    expect(Buffer.from(ours).equals(Buffer.from(effectBytes(data)))).toBe(true)
  })

  it("writes Effect's bytes for an empty export and for several resources", () => {
    expect(Buffer.from(encodeTraces({ resourceSpans: [] })).equals(Buffer.from(effectBytes({ resourceSpans: [] })))).toBe(true)
    const two: TraceData = { resourceSpans: [...traces([span(3)]).resourceSpans, ...traces([span(4), span(5)]).resourceSpans] }
    expect(Buffer.from(encodeTraces(two)).equals(Buffer.from(effectBytes(two)))).toBe(true)
  })

  it("is what the protobuf serialization layer posts, as application/x-protobuf", () => {
    const data = traces([span(0), span(1)])
    const body = bodyOf(protobufSerialization, data)
    expect(body._tag).toBe("Uint8Array")
    expect(body._tag === "Uint8Array" && body.contentType).toBe("application/x-protobuf")
    expect(body._tag === "Uint8Array" && Buffer.from(body.body).equals(Buffer.from(effectBytes(data)))).toBe(true)
  })
})
