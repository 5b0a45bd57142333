/**
 * OTLP/HTTP protobuf bodies for trace exports (`opentelemetry/proto/collector/trace/v1`), written in
 * one pass into one growing buffer.
 *
 * Effect's own protobuf serialization (`OtlpSerialization.layerProtobuf`) builds a `Uint8Array`
 * for every field, tag and varint, converts every integer through `BigInt`, and concatenates the
 * pieces level by level. With every span exported, that work grows with the spans per second. This
 * writes the same bytes (field order, which fields are written when empty, varint and fixed-width
 * encodings), which `test/OtlpProtobuf.test.ts` checks against Effect's encoder; metrics and logs,
 * which no service exports, keep Effect's.
 */
import { Effect, Layer } from "effect"
import { HttpBody } from "effect/http"
import type { OtlpResource, OtlpTracer } from "effect/observability"
import { OtlpSerialization } from "effect/observability"

type TraceData = OtlpTracer.TraceData
type KeyValue = OtlpResource.KeyValue
type AnyValue = OtlpResource.AnyValue

const VARINT = 0
const FIXED64 = 1
const LENGTH_DELIMITED = 2

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5)

/** A growing byte buffer with the protobuf wire encodings used by OTLP traces. */
class Writer {
  buf = Buffer.allocUnsafe(16 * 1024)
  pos = 0

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  /** A varint of a non-negative integer below 2^32. */
  uint32(n: number): void {
    this.ensure(5)
    const buf = this.buf
    while (n > 0x7f) {
      buf[this.pos++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    buf[this.pos++] = n
  }

  tag(field: number, wire: number): void {
    this.uint32((field << 3) | wire)
  }

  /** A varint of any int64 (a negative one as its 64-bit two's complement, ten bytes). */
  int64(value: number | string | bigint): void {
    if (typeof value === "number" && value >= 0 && value < 0x100000000 && Number.isInteger(value)) return this.uint32(value)
    let n = BigInt.asUintN(64, BigInt(value))
    this.ensure(10)
    while (n > 0x7fn) {
      this.buf[this.pos++] = Number(n & 0x7fn) | 0x80
      n >>= 7n
    }
    this.buf[this.pos++] = Number(n)
  }

  fixed64(value: string | number | bigint): void {
    this.ensure(8)
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)), this.pos)
    this.pos += 8
  }

  double(value: number): void {
    this.ensure(8)
    this.buf.writeDoubleLE(value, this.pos)
    this.pos += 8
  }

  /** Starts a length-delimited value: one byte is kept for its length, which `close` writes. */
  open(field: number): number {
    this.tag(field, LENGTH_DELIMITED)
    this.ensure(1)
    return this.pos++
  }

  /** Writes the length of the value opened at `at`, moving the value if the length needs more than one byte. */
  close(at: number): void {
    const length = this.pos - at - 1
    const size = varintSize(length)
    if (size > 1) {
      this.ensure(size - 1)
      this.buf.copyWithin(at + size, at + 1, this.pos)
      this.pos += size - 1
    }
    let n = length
    let i = at
    while (n > 0x7f) {
      this.buf[i++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    this.buf[i] = n
  }

  string(field: number, value: string): void {
    const at = this.open(field)
    this.ensure(value.length * 3)
    this.pos += this.buf.write(value, this.pos)
    this.close(at)
  }

  /** Bytes given as hex (trace and span ids). */
  hex(field: number, value: string): void {
    const at = this.open(field)
    this.ensure(value.length >> 1)
    this.pos += this.buf.write(value, this.pos, "hex")
    this.close(at)
  }

  bytes(field: number, value: Uint8Array): void {
    const at = this.open(field)
    this.ensure(value.length)
    this.buf.set(value, this.pos)
    this.pos += value.length
    this.close(at)
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

// opentelemetry/proto/common/v1/common.proto
const anyValue = (w: Writer, value: AnyValue): void => {
  if (value.stringValue !== undefined && value.stringValue !== null) return w.string(1, value.stringValue)
  if (value.boolValue !== undefined && value.boolValue !== null) {
    w.tag(2, VARINT)
    return w.uint32(value.boolValue ? 1 : 0)
  }
  if (value.intValue !== undefined && value.intValue !== null) {
    w.tag(3, VARINT)
    return w.int64(value.intValue)
  }
  if (value.doubleValue !== undefined && value.doubleValue !== null) {
    w.tag(4, FIXED64)
    return w.double(value.doubleValue)
  }
  if (value.arrayValue !== undefined) {
    const at = w.open(5)
    for (const v of value.arrayValue.values) {
      const inner = w.open(1)
      anyValue(w, v)
      w.close(inner)
    }
    return w.close(at)
  }
  if (value.kvlistValue !== undefined) {
    const at = w.open(6)
    keyValues(w, 1, value.kvlistValue.values)
    return w.close(at)
  }
  if (value.bytesValue !== undefined) return w.bytes(7, value.bytesValue)
}

const keyValues = (w: Writer, field: number, values: ReadonlyArray<KeyValue> | undefined): void => {
  if (values === undefined) return
  for (const kv of values) {
    const at = w.open(field)
    w.string(1, kv.key)
    const value = w.open(2)
    anyValue(w, kv.value)
    w.close(value)
    w.close(at)
  }
}

const optionalString = (w: Writer, field: number, value: string | undefined): void => {
  if (value !== undefined && value !== "") w.string(field, value)
}

const count = (w: Writer, field: number, value: number | undefined): void => {
  if (value !== undefined && value > 0) {
    w.tag(field, VARINT)
    w.int64(value)
  }
}

type Span = TraceData["resourceSpans"][number]["scopeSpans"][number]["spans"][number]

// opentelemetry/proto/trace/v1/trace.proto
const span = (w: Writer, s: Span): void => {
  w.hex(1, s.traceId)
  w.hex(2, s.spanId)
  if (s.parentSpanId !== undefined) w.hex(4, s.parentSpanId)
  w.string(5, s.name)
  w.tag(6, VARINT)
  w.int64(s.kind)
  w.tag(7, FIXED64)
  w.fixed64(s.startTimeUnixNano)
  w.tag(8, FIXED64)
  w.fixed64(s.endTimeUnixNano)
  keyValues(w, 9, s.attributes)
  count(w, 10, s.droppedAttributesCount)
  for (const e of s.events) {
    const at = w.open(11)
    w.tag(1, FIXED64)
    w.fixed64(e.timeUnixNano)
    w.string(2, e.name)
    keyValues(w, 3, e.attributes)
    count(w, 4, e.droppedAttributesCount)
    w.close(at)
  }
  count(w, 12, s.droppedEventsCount)
  for (const l of s.links) {
    const at = w.open(13)
    w.hex(1, l.traceId)
    w.hex(2, l.spanId)
    keyValues(w, 4, l.attributes)
    count(w, 5, l.droppedAttributesCount)
    w.close(at)
  }
  count(w, 14, s.droppedLinksCount)
  const status = w.open(15)
  optionalString(w, 2, s.status.message)
  w.tag(3, VARINT)
  w.int64(s.status.code)
  w.close(status)
}

/**
 * An `ExportTraceServiceRequest` (the same message as `TracesData`) as protobuf bytes, for the
 * fields Effect's `TraceData` has (no trace state or flags on spans and links, no scope attributes).
 */
export const encodeTraces = (data: TraceData): Uint8Array => {
  const w = new Writer()
  for (const rs of data.resourceSpans) {
    const resourceSpans = w.open(1)
    const resource = w.open(1)
    keyValues(w, 1, rs.resource.attributes)
    count(w, 2, rs.resource.droppedAttributesCount)
    w.close(resource)
    for (const ss of rs.scopeSpans) {
      const scopeSpans = w.open(2)
      const scope = w.open(1)
      w.string(1, ss.scope.name)
      optionalString(w, 2, ss.scope.version)
      w.close(scope)
      for (const s of ss.spans) {
        const at = w.open(2)
        span(w, s)
        w.close(at)
      }
      optionalString(w, 3, ss.schemaUrl)
      w.close(scopeSpans)
    }
    optionalString(w, 3, rs.schemaUrl)
    w.close(resourceSpans)
  }
  return w.finish()
}

/**
 * `OtlpSerialization` for OTLP/HTTP protobuf with traces encoded by `encodeTraces`; metrics and
 * logs as Effect's `layerProtobuf` encodes them.
 */
export const protobufSerialization: Layer.Layer<OtlpSerialization.OtlpSerialization> = Layer.effect(
  OtlpSerialization.OtlpSerialization,
  Effect.gen(function*() {
    const effects = yield* OtlpSerialization.OtlpSerialization
    return {
      ...effects,
      traces: (data: TraceData) => HttpBody.uint8Array(encodeTraces(data), "application/x-protobuf")
    }
  })
).pipe(Layer.provide(OtlpSerialization.layerProtobuf))
