-- Fair share of the ingest queue between orgs (one Hyperliquid budget for all).
-- A job may say whom it is for (`fair_key`: an org's id, '' for nobody in
-- particular); a claim takes the oldest due job of every key before the second
-- of any, so a large backfill cannot hold back a small org's sync.
ALTER TABLE jobs ADD COLUMN fair_key text NOT NULL DEFAULT '';

-- The claim walks the distinct keys of a queue, then the oldest jobs of each.
CREATE INDEX jobs_fair_idx ON jobs (queue, fair_key, run_at, id) WHERE state = 'queued';
