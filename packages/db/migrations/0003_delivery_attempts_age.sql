-- The attempt log keeps what its topic keeps (30 days): the projection deletes older rows in
-- batches, found by this index (the page index leads with endpoint_id, so it cannot serve that).
CREATE INDEX delivery_attempts_age ON delivery_attempts (occurred_at);
