-- An idempotent replay must answer with the bytes of the original response. jsonb keeps neither
-- key order nor formatting, so the stored response is kept as the exact JSON text written.
ALTER TABLE idempotency_keys ALTER COLUMN response TYPE text USING response::text;
