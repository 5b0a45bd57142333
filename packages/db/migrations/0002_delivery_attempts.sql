-- The delivery-attempt log, written only by the projection from
-- `webhooks.delivery-attempts`; rebuildable from Kafka. One row per `DeliveryAttempted` event.
CREATE TABLE delivery_attempts (
  id                 text PRIMARY KEY,            -- the attempt event's event_id (idempotent inserts)
  delivery_id        text NOT NULL,               -- X-Devotel-Delivery-Id: same for every attempt of (event, endpoint)
  endpoint_id        text NOT NULL,
  tenant_id          text NOT NULL,
  mode               text NOT NULL CHECK (mode IN ('live', 'test')),
  source_event_id    text NOT NULL,
  source_event_type  text NOT NULL,
  attempt            integer NOT NULL,
  outcome            text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
  http_status        integer,
  duration_ms        integer NOT NULL,
  error_class        text,
  error_message      text,
  next_attempt_at    timestamptz,
  dead_lettered      boolean NOT NULL,
  occurred_at        timestamptz NOT NULL
);
-- GET /api/v1/webhooks/{id}/deliveries: newest first per endpoint, keyset-paginated on (occurred_at, id).
CREATE INDEX delivery_attempts_page ON delivery_attempts (endpoint_id, occurred_at DESC, id DESC);
