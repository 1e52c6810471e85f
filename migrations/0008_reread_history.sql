-- Fill passes used to end at the first page shorter than 2000 fills, although
-- Hyperliquid may cut a page at 500 elements or distinct blocks: fills behind such a
-- cut were never stored, and the 10-minute overlap of later passes cannot reach them.
-- Every wallet ingested before this release re-reads its reachable history once:
-- the next ingest starts from 0 instead of its cursor, stores what was missing (the
-- (wallet, tid, oid) identity keeps what is already stored from being doubled),
-- marks the days that received fills for rollup, and clears this flag. The scheduler
-- treats a flagged wallet as due; `hl-analytics status` counts those left.
ALTER TABLE hl_ingest_cursor ADD COLUMN reread_pending boolean NOT NULL DEFAULT false;
UPDATE hl_ingest_cursor SET reread_pending = true WHERE synced_until_ms IS NOT NULL;
