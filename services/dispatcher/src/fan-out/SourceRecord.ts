import { DomainEvent, type DomainEvent as DomainEventType, eventDataProblems, isEventType } from "@orbit/domain"
import { Result, Schema } from "effect"

/** API.md §8: a source record over 1 MiB is refused. */
export const MAX_SOURCE_RECORD_BYTES = 1024 * 1024

export type InvalidReason = "too_large" | "empty" | "invalid_json" | "unknown_type" | "invalid_shape" | "invalid_data"

export type SourceRecordVerdict =
  | { readonly _tag: "Valid"; readonly event: DomainEventType }
  | { readonly _tag: "Invalid"; readonly reason: InvalidReason; readonly detail: string }

const decode = Schema.decodeUnknownResult(DomainEvent)

const invalid = (reason: InvalidReason, detail: string): SourceRecordVerdict => ({ _tag: "Invalid", reason, detail })

/**
 * Classifies one `orbit.events` record (pure). Unknown types are told apart from other shape errors.
 * With `strictData`, an event whose `data` fails its type's schema (@orbit/domain's EventCatalog)
 * is invalid too, its detail listing each problem as `path: message`.
 */
export const classifySourceRecord = (value: Buffer | null, options: { readonly strictData?: boolean } = {}): SourceRecordVerdict => {
  if (value === null || value.length === 0) return invalid("empty", "record has no value")
  if (value.length > MAX_SOURCE_RECORD_BYTES) return invalid("too_large", `record is ${value.length} bytes`)
  let json: unknown
  try {
    json = JSON.parse(value.toString("utf8"))
  } catch (e) {
    return invalid("invalid_json", (e as Error).message.slice(0, 200))
  }
  if (typeof json === "object" && json !== null && typeof (json as { type?: unknown }).type === "string") {
    const type = (json as { type: string }).type
    if (!isEventType(type)) return invalid("unknown_type", `type ${JSON.stringify(type.slice(0, 100))} is not in the catalog`)
  }
  const decoded = decode(json)
  if (Result.isFailure(decoded)) return invalid("invalid_shape", decoded.failure.message.slice(0, 500))
  if (options.strictData) {
    const problems = eventDataProblems(decoded.success.type, decoded.success.data)
    if (problems.length > 0) {
      const detail = problems.map((p) => `data${p.path.map((k) => `.${String(k)}`).join("")}: ${p.message}`).join("; ")
      return invalid("invalid_data", detail.slice(0, 500))
    }
  }
  return { _tag: "Valid", event: decoded.success }
}
