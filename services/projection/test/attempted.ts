import { randomUUID } from "node:crypto"
import { type DeliveryAttempted, newEventId } from "@orbit/domain"

/** A failed first attempt at a delivery to `endpointId`, with `over` applied. */
export const attempted = (endpointId: string, over: Partial<DeliveryAttempted> = {}): DeliveryAttempted => ({
  _tag: "DeliveryAttempted",
  schema_version: 1,
  event_id: randomUUID(),
  occurred_at: new Date().toISOString(),
  delivery_id: randomUUID(),
  endpoint_id: endpointId,
  tenant_id: "tenant_p",
  mode: "live",
  source_event_id: newEventId(),
  source_event_type: "message.delivered",
  attempt: 1,
  outcome: "failed",
  http_status: 503,
  duration_ms: 12,
  error_class: "http_status",
  error_message: "HTTP 503",
  next_attempt_at: new Date(Date.now() + 60_000).toISOString(),
  dead_lettered: false,
  ...over
})
