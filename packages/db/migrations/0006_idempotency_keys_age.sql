-- Idempotency keys live 24 hours: the registration service deletes older rows in batches, found
-- by this index (the primary key leads with tenant_id, so it cannot serve that).
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
