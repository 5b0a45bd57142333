-- A claimed Idempotency-Key keeps the registration it decided (resource, sealed secret, the event
-- to append) until its answer is stored, so a retry after an unknown outcome (a produce that
-- failed or timed out) appends that very event again instead of registering a second endpoint.
-- claimed_at: when a request last took the claim; NULL when its request gave it up. A claim left
-- longer than its lease (its request died) is taken over by the next request with the key.
ALTER TABLE idempotency_keys ADD COLUMN pending text, ADD COLUMN claimed_at timestamptz DEFAULT now();
