-- An endpoint's last success, for the failure streak (registration's AutoDisable and its
-- orbit_endpoint_failing_longest_seconds gauge): without it, finding the newest 'succeeded' row
-- walks every failed attempt of an endpoint that keeps failing.
CREATE INDEX delivery_attempts_succeeded ON delivery_attempts (endpoint_id, occurred_at DESC) WHERE outcome = 'succeeded';
