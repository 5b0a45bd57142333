import { Schema } from "effect"
import { Mode } from "./Mode.ts"

/**
 * The dispatcher's messages (DESIGN.md "Topics"). Each has its own `event_id` (unique per record),
 * `occurred_at` and `schema_version`; the upstream domain event they are about is `source_event_*`.
 * A published shape is never edited: a change adds a new `schema_version` and an upcaster.
 */
const envelope = {
  schema_version: Schema.Literal(1),
  event_id: Schema.String,
  occurred_at: Schema.String
}

/** Identifies one (event, endpoint) delivery; shared by tasks, attempts and dead letters. */
const delivery = {
  /** `deliveryIdFor(source_event_id, endpoint_id)`: the `X-Devotel-Delivery-Id` of every attempt. */
  delivery_id: Schema.String,
  endpoint_id: Schema.String,
  tenant_id: Schema.String,
  mode: Mode,
  source_event_id: Schema.String,
  source_event_type: Schema.String
}

/**
 * Present (true) when the source event was addressed to this one endpoint (`DomainEvent.endpoint_id`,
 * e.g. a test event): the endpoint's event-type filter does not apply to it. Optional, so records
 * written before it existed still decode as version 1.
 */
const addressed = { addressed: Schema.optionalKey(Schema.Literal(true)) }

/**
 * Present (true) on a task that makes exactly one attempt (`POST …/deliveries/{id}/retry`): its
 * outcome is recorded, and a failure schedules no retry and writes no dead letter.
 */
const once = { once: Schema.optionalKey(Schema.Literal(true)) }

/**
 * One attempt to make, on `webhooks.deliveries` (attempt 1) and the retry tiers (later attempts),
 * key = endpoint id. `body` is the exact request body (API.md §7), so every attempt sends the same bytes.
 */
export const DeliveryTask = Schema.TaggedStruct("DeliveryTask", {
  ...envelope,
  ...delivery,
  body: Schema.String,
  /** 1-based number of the attempt this task will make. */
  attempt: Schema.Int,
  /** The attempt must not start before this instant (ISO 8601). */
  not_before: Schema.String,
  ...addressed,
  ...once
})
export type DeliveryTask = typeof DeliveryTask.Type

export const AttemptOutcome = Schema.Literals(["succeeded", "failed"])
export type AttemptOutcome = typeof AttemptOutcome.Type

/** Why an attempt failed; null on success. */
export const AttemptErrorClass = Schema.Literals([
  "http_status",
  "redirect",
  "timeout",
  "ssrf_blocked",
  "dns",
  "tls",
  "connection",
  "signing",
  "internal"
])
export type AttemptErrorClass = typeof AttemptErrorClass.Type

/**
 * What one attempt found: the fields of `DeliveryAttempted` after the delivery's identity, declared
 * once for the event and for the API's attempt resource (registration's `DeliverySchemas.ts`).
 */
export const attemptResultFields = {
  /** 1-based; a replay of a dead-lettered delivery starts again at 1. */
  attempt: Schema.Int,
  outcome: AttemptOutcome,
  /** The receiver's HTTP status, or null when no response arrived (timeout, connection, TLS…). */
  http_status: Schema.NullOr(Schema.Int),
  duration_ms: Schema.Int,
  error_class: Schema.NullOr(AttemptErrorClass),
  /** A short description for operators; never contains the secret or the body. */
  error_message: Schema.NullOr(Schema.String),
  /** When the next attempt is scheduled, or null (succeeded, or exhausted). */
  next_attempt_at: Schema.NullOr(Schema.String),
  /** True when this was the last attempt and the delivery went to the dead-letter topic. */
  dead_lettered: Schema.Boolean
}

/**
 * One event per attempt, on `webhooks.delivery-attempts` (key = endpoint id). The first attempt of
 * a chain (attempt 1) also carries the request `body` (and `addressed`), so the attempts read model
 * holds what a recovery or a single retry sends again; later attempts leave them out.
 */
export const DeliveryAttempted = Schema.TaggedStruct("DeliveryAttempted", {
  ...envelope,
  ...delivery,
  ...attemptResultFields,
  body: Schema.optionalKey(Schema.String),
  ...addressed,
  /**
   * The OpenTelemetry trace the attempt's span belongs to (32 hex digits), when the dispatcher
   * traced it. Optional, so records written before it existed, or with tracing off, still decode
   * as version 1.
   */
  trace_id: Schema.optionalKey(Schema.String)
})
export type DeliveryAttempted = typeof DeliveryAttempted.Type

/**
 * A delivery whose attempts are exhausted, on `webhooks.deliveries.dead` (key = endpoint id).
 * It carries the body, so a replay can produce a fresh `DeliveryTask` (attempt 1) from it alone.
 */
export const DeliveryDeadLettered = Schema.TaggedStruct("DeliveryDeadLettered", {
  ...envelope,
  ...delivery,
  body: Schema.String,
  attempts: Schema.Int,
  last_http_status: Schema.NullOr(Schema.Int),
  last_error_class: Schema.NullOr(AttemptErrorClass),
  ...addressed
})
export type DeliveryDeadLettered = typeof DeliveryDeadLettered.Type

/** What a delivery is sent again from: its identity, its exact body and whether it was addressed. */
export interface DeliveryPayload {
  readonly delivery_id: string
  readonly endpoint_id: string
  readonly tenant_id: string
  readonly mode: Mode
  readonly source_event_id: string
  readonly source_event_type: string
  readonly body: string
  readonly addressed?: true | undefined
}

/**
 * A task that sends a delivery again (pure), due now, with the SAME delivery id and body, so the
 * receiver sees the same `X-Devotel-Delivery-Id` and event id and can dedupe. By default it starts
 * a new attempt chain (attempt 1, retried per the endpoint's current policy, dead-lettered if it
 * fails again): dead-letter replay and recovery. With `once`, it is the single attempt `attempt`.
 */
export const redeliveryTask = (
  payload: DeliveryPayload,
  now: number,
  newId: () => string,
  options: { readonly once?: { readonly attempt: number } } = {}
): DeliveryTask => {
  const at = new Date(now).toISOString()
  return {
    _tag: "DeliveryTask",
    schema_version: 1,
    event_id: newId(),
    occurred_at: at,
    delivery_id: payload.delivery_id,
    endpoint_id: payload.endpoint_id,
    tenant_id: payload.tenant_id,
    mode: payload.mode,
    source_event_id: payload.source_event_id,
    source_event_type: payload.source_event_type,
    body: payload.body,
    attempt: options.once?.attempt ?? 1,
    not_before: at,
    ...(payload.addressed ? { addressed: true as const } : {}),
    ...(options.once ? { once: true as const } : {})
  }
}

export const DeliveryTaskJson = Schema.fromJsonString(DeliveryTask)
export const decodeDeliveryTask = Schema.decodeUnknownSync(DeliveryTaskJson)
export const encodeDeliveryTask = Schema.encodeSync(DeliveryTaskJson)

export const DeliveryAttemptedJson = Schema.fromJsonString(DeliveryAttempted)
export const decodeDeliveryAttempted = Schema.decodeUnknownSync(DeliveryAttemptedJson)
export const encodeDeliveryAttempted = Schema.encodeSync(DeliveryAttemptedJson)

export const DeliveryDeadLetteredJson = Schema.fromJsonString(DeliveryDeadLettered)
export const decodeDeliveryDeadLettered = Schema.decodeUnknownSync(DeliveryDeadLetteredJson)
export const encodeDeliveryDeadLettered = Schema.encodeSync(DeliveryDeadLetteredJson)
