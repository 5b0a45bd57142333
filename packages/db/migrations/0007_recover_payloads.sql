-- What a delivery is sent again from (recovery, single retry): the request body of its first
-- attempt, written only by the projection from the attempt-1 `DeliveryAttempted` events of
-- `webhooks.delivery-attempts` (which carry the body); rebuildable from Kafka, pruned with the
-- attempt log (30 days). One row per delivery: the first body stored wins.
CREATE TABLE delivery_payloads (
  delivery_id        text PRIMARY KEY,
  endpoint_id        text NOT NULL,
  tenant_id          text NOT NULL,
  mode               text NOT NULL CHECK (mode IN ('live', 'test')),
  source_event_id    text NOT NULL,
  source_event_type  text NOT NULL,
  body               text NOT NULL,
  addressed          boolean NOT NULL,
  occurred_at        timestamptz NOT NULL
);
CREATE INDEX delivery_payloads_age ON delivery_payloads (occurred_at);
-- A delivery's attempts, newest first: its latest outcome (recovery) and its last attempt number (retry).
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, occurred_at DESC, id DESC);

-- POST /api/v1/webhooks/{id}/recover: one row per recovery started, written by the registration
-- service. A repeat of the same window (since, and until as requested: null when omitted) for the
-- same endpoint within 24 h answers with the row instead of starting another recovery.
CREATE TABLE recoveries (
  id               text PRIMARY KEY,
  tenant_id        text NOT NULL,
  mode             text NOT NULL CHECK (mode IN ('live', 'test')),
  endpoint_id      text NOT NULL,
  since            timestamptz NOT NULL,
  until_requested  timestamptz,
  until            timestamptz NOT NULL,
  deliveries       integer NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recoveries_window ON recoveries (endpoint_id, since, created_at DESC);
