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
  attempted_at: Schema.String
}).annotate({ identifier: "DeliveryAttempt" })
export type DeliveryAttemptResource = typeof DeliveryAttemptResource.Type
