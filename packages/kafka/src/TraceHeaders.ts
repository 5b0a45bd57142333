import type { IHeaders } from "./Kafkajs.ts"

/** W3C Trace Context header names, used as Kafka record header names unchanged. */
export const TRACEPARENT_HEADER = "traceparent"
export const TRACESTATE_HEADER = "tracestate"

/** The trace context a record carries: whose child the work on it is. */
export interface RecordTraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string
  /** 16 lowercase hex digits, not all zero: the span that produced the record. */
  readonly spanId: string
  /** The `sampled` flag of `traceparent`. */
  readonly sampled: boolean
  /** The vendor entries of `tracestate`, passed on as they came (at most 512 characters kept). */
  readonly traceState?: string | undefined
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO_TRACE = "00000000000000000000000000000000"
const ZERO_SPAN = "0000000000000000"
/** W3C: a tracestate has at most 32 entries; longer values than this are dropped, not cut. */
const MAX_TRACESTATE = 512

const text = (value: IHeaders[string]): string | undefined => {
  if (value === undefined) return undefined
  const first = Array.isArray(value) ? value[0] : value
  return first === undefined ? undefined : typeof first === "string" ? first : first.toString("latin1")
}

/**
 * The trace context of a record's headers (W3C Trace Context, level 1), or undefined when there
 * is none or it is malformed: an upstream record's headers are hostile input, and a bad
 * `traceparent` only means the work on it starts a new trace. Version `ff` and all-zero ids are
 * refused; a later version is read by its first four fields, as the specification asks.
 */
export const traceContextOf = (headers: IHeaders | undefined): RecordTraceContext | undefined => {
  if (headers === undefined) return undefined
  const parent = text(headers[TRACEPARENT_HEADER])
  if (parent === undefined || parent.length > 256) return undefined
  const m = TRACEPARENT.exec(parent.trim())
  if (m === null) return undefined
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined]
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined
  const state = text(headers[TRACESTATE_HEADER])?.trim()
  return {
    traceId,
    spanId,
    sampled: (parseInt(flags, 16) & 1) === 1,
    ...(state === undefined || state === "" || state.length > MAX_TRACESTATE ? {} : { traceState: state })
  }
}

/**
 * The record headers that make `span` the parent of the work on a record: `traceparent`, and
 * `tracestate` when `traceState` is given (the upstream's, passed on unchanged).
 */
export const traceHeaders = (
  span: { readonly traceId: string; readonly spanId: string; readonly sampled: boolean },
  traceState?: string | undefined
): Record<string, string> => {
  const parent = `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
  return traceState === undefined ? { [TRACEPARENT_HEADER]: parent } : { [TRACEPARENT_HEADER]: parent, [TRACESTATE_HEADER]: traceState }
}
