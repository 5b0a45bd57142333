import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"

/** One exported span, as an OpenTelemetry collector would read it. */
export interface ReceivedSpan {
  /** The exporting service's `service.name` resource attribute. */
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  /** Undefined for a root span. */
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number
}

export interface OtlpReceiver {
  /** The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`). */
  readonly url: string
  readonly spans: Array<ReceivedSpan>
  /** The content types of the export requests received. */
  readonly contentTypes: Set<string>
  close(): Promise<void>
}

// ---- A minimal protobuf reader: the wire format of the OTLP messages read here. ----

type Field = { readonly no: number; readonly wire: number; readonly int: bigint; readonly bytes: Buffer }

const fields = (buf: Buffer): Array<Field> => {
  const out: Array<Field> = []
  let i = 0
  const varint = (): bigint => {
    let result = 0n
    let shift = 0n
    for (;;) {
      const b = buf[i++]!
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return result
      shift += 7n
    }
  }
  while (i < buf.length) {
    const key = Number(varint())
    const no = key >>> 3
    const wire = key & 7
    if (wire === 0) out.push({ no, wire, int: varint(), bytes: Buffer.alloc(0) })
    else if (wire === 1) {
      out.push({ no, wire, int: buf.readBigUInt64LE(i), bytes: buf.subarray(i, i + 8) })
      i += 8
    } else if (wire === 2) {
      const len = Number(varint())
      out.push({ no, wire, int: 0n, bytes: buf.subarray(i, i + len) })
      i += len
    } else if (wire === 5) {
      out.push({ no, wire, int: BigInt(buf.readUInt32LE(i)), bytes: buf.subarray(i, i + 4) })
      i += 4
    } else throw new Error(`unsupported protobuf wire type ${wire}`)
  }
  return out
}

const all = (buf: Buffer, no: number) => fields(buf).filter((f) => f.no === no)
const one = (buf: Buffer, no: number) => fields(buf).find((f) => f.no === no)

/** opentelemetry.proto.common.v1.AnyValue: string 1, bool 2, int 3, double 4. */
const anyValue = (buf: Buffer): string | number | boolean => {
  const f = fields(buf)[0]
  if (f === undefined) return ""
  if (f.no === 1) return f.bytes.toString("utf8")
  if (f.no === 2) return f.int !== 0n
  if (f.no === 3) return Number(BigInt.asIntN(64, f.int))
  if (f.no === 4) return f.bytes.readDoubleLE(0)
  return f.bytes.toString("hex")
}

/** Repeated KeyValue (key 1, value 2) as a record. */
const keyValues = (entries: ReadonlyArray<Field>) =>
  Object.fromEntries(entries.map((kv) => {
    const key = one(kv.bytes, 1)?.bytes.toString("utf8") ?? ""
    const value = one(kv.bytes, 2)
    return [key, value === undefined ? "" : anyValue(value.bytes)]
  }))

/** ExportTraceServiceRequest (protobuf) → spans. */
export const decodeProtobufTraces = (body: Buffer): Array<ReceivedSpan> =>
  all(body, 1).flatMap((resourceSpans) => {
    const resource = one(resourceSpans.bytes, 1)
    const service = String(resource === undefined ? "" : keyValues(all(resource.bytes, 1))["service.name"] ?? "")
    return all(resourceSpans.bytes, 2).flatMap((scopeSpans) =>
      all(scopeSpans.bytes, 2).map((span): ReceivedSpan => {
        const parent = one(span.bytes, 4)?.bytes
        const status = one(span.bytes, 15)
        return {
          service,
          traceId: one(span.bytes, 1)!.bytes.toString("hex"),
          spanId: one(span.bytes, 2)!.bytes.toString("hex"),
          parentSpanId: parent === undefined || parent.length === 0 ? undefined : parent.toString("hex"),
          name: one(span.bytes, 5)?.bytes.toString("utf8") ?? "",
          kind: Number(one(span.bytes, 6)?.int ?? 0n),
          attributes: keyValues(all(span.bytes, 9)),
          statusCode: status === undefined ? 0 : Number(one(status.bytes, 3)?.int ?? 0n)
        }
      })
    )
  })

interface JsonAnyValue {
  readonly stringValue?: string
  readonly boolValue?: boolean
  readonly intValue?: string | number
  readonly doubleValue?: number
}
interface JsonKeyValue {
  readonly key: string
  readonly value: JsonAnyValue
}

const jsonValue = (v: JsonAnyValue): string | number | boolean =>
  v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? "")

/** ExportTraceServiceRequest (OTLP/JSON) → spans. */
export const decodeJsonTraces = (body: Buffer): Array<ReceivedSpan> => {
  const data = JSON.parse(body.toString("utf8")) as {
    resourceSpans: Array<{
      resource: { attributes: Array<JsonKeyValue> }
      scopeSpans: Array<{
        spans: Array<{
          traceId: string
          spanId: string
          parentSpanId?: string
          name: string
          kind: number
          attributes: Array<JsonKeyValue>
          status: { code: number }
        }>
      }>
    }>
  }
  return data.resourceSpans.flatMap((rs) => {
    const service = String(jsonValue(rs.resource.attributes.find((a) => a.key === "service.name")?.value ?? {}))
    return rs.scopeSpans.flatMap((ss) =>
      ss.spans.map((s) => ({
        service,
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId === undefined || s.parentSpanId === "" ? undefined : s.parentSpanId,
        name: s.name,
        kind: s.kind,
        attributes: Object.fromEntries(s.attributes.map((a) => [a.key, jsonValue(a.value)])),
        statusCode: s.status.code
      }))
    )
  })
}

/**
 * A local OTLP/HTTP trace receiver, as a collector's `otlp` receiver: `POST /v1/traces` with a
 * protobuf (`application/x-protobuf`) or JSON (`application/json`) ExportTraceServiceRequest,
 * answered `200 {}`. Everything else is `404`.
 */
export const startOtlpReceiver = async (): Promise<OtlpReceiver> => {
  const spans: Array<ReceivedSpan> = []
  const contentTypes = new Set<string>()
  const server: Server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") return void res.writeHead(404).end()
      const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim()
      contentTypes.add(type)
      const body = Buffer.concat(chunks)
      try {
        spans.push(...(type === "application/json" ? decodeJsonTraces(body) : decodeProtobufTraces(body)))
      } catch (error) {
        return void res.writeHead(400, { "content-type": "text/plain" }).end(String(error))
      }
      res.writeHead(200, { "content-type": type === "application/json" ? "application/json" : "application/x-protobuf" })
        .end(type === "application/json" ? "{}" : undefined)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
