-- The scheduler's memory: when it last queued an ingest of the wallet, so that a
-- wallet whose ingest is queued or running is not queued again by another tick
-- or another scheduler process.
ALTER TABLE hl_ingest_cursor ADD COLUMN last_scheduled_at timestamptz;
