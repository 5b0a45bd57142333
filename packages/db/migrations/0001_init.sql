-- API keys are stored only as SHA-256 hashes (API.md §1).
CREATE TABLE api_keys (
  id          text PRIMARY KEY,
  tenant_id   text NOT NULL,
  mode        text NOT NULL CHECK (mode IN ('live', 'test')),
  kind        text NOT NULL CHECK (kind IN ('secret', 'public')),
  key_hash    text NOT NULL UNIQUE,
  prefix      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- The endpoint read model, written only by the projection; rebuildable from Kafka.
CREATE TABLE endpoints (
  id                   text PRIMARY KEY,
  tenant_id            text NOT NULL,
  mode                 text NOT NULL,
  url                  text NOT NULL,
  events               jsonb NOT NULL,
  description          text,
  active               boolean NOT NULL,
  timeout_seconds      integer NOT NULL,
  retry_policy         jsonb NOT NULL,
  secret_box           text NOT NULL,
  previous_secret_box  text,
  previous_expires_at  timestamptz,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL
);
CREATE INDEX endpoints_page ON endpoints (tenant_id, mode, created_at DESC, id DESC);

-- Consumed offsets, written in the same transaction as the rows they produced.
CREATE TABLE projection_offsets (
  projection   text NOT NULL,
  topic        text NOT NULL,
  partition    integer NOT NULL,
  next_offset  bigint NOT NULL,
  PRIMARY KEY (projection, topic, partition)
);

-- Idempotency-Key records (24 h). The stored response never holds a cleartext secret.
CREATE TABLE idempotency_keys (
  tenant_id     text NOT NULL,
  mode          text NOT NULL,
  key           text NOT NULL,
  request_hash  text NOT NULL,
  status        integer,
  response      jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, mode, key)
);
