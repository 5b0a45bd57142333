-- Custom headers sent on every delivery, and why and when the platform disabled an endpoint
-- (null while it has not, or since it was turned on again).
ALTER TABLE endpoints
  ADD COLUMN headers          jsonb NOT NULL DEFAULT '{}'::jsonb,
  ADD COLUMN disabled_reason  text CHECK (disabled_reason IN ('failing')),
  ADD COLUMN disabled_at      timestamptz;
