-- An endpoint's delivery rate limit (attempts per second); NULL: none. Rows projected before it
-- existed had none.
ALTER TABLE endpoints ADD COLUMN rate_limit_per_second integer;
