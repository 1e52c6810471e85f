-- Fair share of the ingest queue between orgs (one Hyperliquid budget for all).
-- A job may say whom it is for (`fair_key`: an org's id, '' for nobody in
-- particular); a claim takes the head of the key served longest ago first, so a
-- large backfill cannot hold back a small org's sync.
ALTER TABLE jobs ADD COLUMN fair_key text NOT NULL DEFAULT '';

-- The claim walks the distinct keys of a queue, then the oldest jobs of each.
CREATE INDEX jobs_fair_idx ON jobs (queue, fair_key, run_at, id) WHERE state = 'queued';

-- When each key of a queue was last given a turn (one row per org and queue).
CREATE TABLE job_fair_turns (
    queue      text NOT NULL,
    fair_key   text NOT NULL,
    served_at  timestamptz NOT NULL,
    PRIMARY KEY (queue, fair_key)
);
