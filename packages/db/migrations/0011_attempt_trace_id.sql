-- The OpenTelemetry trace id of each attempt's span (32 hex digits), from the attempt event's
-- `trace_id`; NULL for attempts made with tracing off or recorded before it existed.
ALTER TABLE delivery_attempts ADD COLUMN trace_id text;
