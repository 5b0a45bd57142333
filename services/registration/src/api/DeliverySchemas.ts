import { attemptResultFields, DeliveryAttempted } from "@orbit/domain"
import { Schema } from "effect"
import { pageQuery } from "./EndpointSchemas.ts"

/** Query of `GET /api/v1/webhooks/{id}/deliveries` (API.md §3: limit ≤ 100). */
export const ListDeliveriesQuery = pageQuery(100)
export type ListDeliveriesQuery = typeof ListDeliveriesQuery.Type

const { delivery_id, endpoint_id, source_event_id, source_event_type } = DeliveryAttempted.fields

/**
 * One delivery attempt, as listed by `GET /api/v1/webhooks/{id}/deliveries` (ours): the fields of
 * the `DeliveryAttempted` event, the source event's renamed `event_*`. Never carries the request
 * body, the secret or the response body.
 */
export const DeliveryAttemptResource = Schema.Struct({
  /** The attempt's own id (the attempt event's `event_id`). */
  id: Schema.String,
  /** The `X-Devotel-Delivery-Id` the receiver saw: the same for every attempt of one (event, endpoint) pair. */
  delivery_id,
  endpoint_id,
  /** The domain event delivered (body `id`, `X-Devotel-Event-Id`). */
  event_id: source_event_id,
  event_type: source_event_type,
  ...attemptResultFields,
  /** The attempt event's `occurred_at`. */
  attempted_at: Schema.String,
  trace_id: Schema.NullOr(Schema.String).annotate({
    description: "The OpenTelemetry trace id (32 hex digits) of the attempt's span: the trace the attempt belongs to, " +
      "with the upstream event's span and the fan-out above it. Null when the attempt was made with tracing off."
  })
}).annotate({ identifier: "DeliveryAttempt" })
export type DeliveryAttemptResource = typeof DeliveryAttemptResource.Type
