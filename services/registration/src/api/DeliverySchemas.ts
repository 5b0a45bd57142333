import { AttemptErrorClass, AttemptOutcome } from "@orbit/domain"
import { Schema, SchemaTransformation } from "effect"

/** Query of `GET /api/v1/webhooks/{id}/deliveries` (API.md §3: limit ≤ 100). */
export const ListDeliveriesQuery = Schema.Struct({
  cursor: Schema.optionalKey(Schema.String.annotate({ expected: "a cursor from meta.pagination.cursor" })),
  // Digits only: `Number()` would also take "0x10", "1e1", " 5" or "".
  limit: Schema.optionalKey(
    Schema.String.check(Schema.isPattern(/^[0-9]{1,9}$/, { expected: "integer 1–100" })).pipe(
      Schema.decodeTo(
        Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 })).annotate({ expected: "integer 1–100" }),
        SchemaTransformation.numberFromString
      )
    ).annotate({ expected: "integer 1–100" })
  )
})
export type ListDeliveriesQuery = typeof ListDeliveriesQuery.Type

/**
 * One delivery attempt, as listed by `GET /api/v1/webhooks/{id}/deliveries` (ours: the fields of
 * the `DeliveryAttempted` event). Never carries the request body, the secret or the response body.
 */
export const DeliveryAttemptResource = Schema.Struct({
  /** The attempt's own id. */
  id: Schema.String,
  /** The `X-Devotel-Delivery-Id` the receiver saw: the same for every attempt of one (event, endpoint) pair. */
  delivery_id: Schema.String,
  endpoint_id: Schema.String,
  /** The domain event delivered (body `id`, `X-Devotel-Event-Id`). */
  event_id: Schema.String,
  event_type: Schema.String,
  /** 1-based; a replay of a dead-lettered delivery starts again at 1. */
  attempt: Schema.Int,
  outcome: AttemptOutcome,
  /** The receiver's HTTP status, or null when no response arrived (timeout, connection, TLS…). */
  http_status: Schema.NullOr(Schema.Int),
  duration_ms: Schema.Int,
  error_class: Schema.NullOr(AttemptErrorClass),
  error_message: Schema.NullOr(Schema.String),
  /** When the next attempt is scheduled; null when this one succeeded or was the last. */
  next_attempt_at: Schema.NullOr(Schema.String),
  /** True when this was the last attempt and the delivery was dead-lettered. */
  dead_lettered: Schema.Boolean,
  attempted_at: Schema.String
}).annotate({ identifier: "DeliveryAttempt" })
export type DeliveryAttemptResource = typeof DeliveryAttemptResource.Type
