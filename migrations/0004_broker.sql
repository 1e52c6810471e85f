-- What the Dramatiq broker (jobs/broker.py) adds to the `jobs` table of 0001.

-- The batches a job counts towards (`hl-analytics sync --wait` waits on one): the
-- sender's `batch` option, the batches of the job that was running when it was
-- sent, and those of every later send that was de-duplicated against it. Most
-- jobs have none, and stay out of the index.
ALTER TABLE jobs ADD COLUMN batches text[] NOT NULL DEFAULT '{}';
CREATE INDEX jobs_batches_idx ON jobs USING gin (batches) WHERE batches <> '{}';

-- Heartbeats extend the leases of one worker's jobs; requeues look them up by owner.
CREATE INDEX jobs_owner_idx ON jobs (lease_owner) WHERE state = 'running';

-- The de-duplication index of 0001, without the jobs that have no key (most of
-- them): sending one of those then updates one index less.
DROP INDEX jobs_dedup_key;
CREATE UNIQUE INDEX jobs_dedup_key ON jobs (dedup_key)
    WHERE dedup_key IS NOT NULL AND (state = 'queued' OR (state = 'running' AND dedup_running));
