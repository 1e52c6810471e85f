-- What the Dramatiq broker (jobs/broker.py) adds to the `jobs` table of 0001.

-- The batches a job counts towards (`hl-analytics sync --wait` waits on one): the
-- sender's `batch` option, the batches of the job that was running when it was
-- sent, and those of every later send that was de-duplicated against it.
ALTER TABLE jobs ADD COLUMN batches text[] NOT NULL DEFAULT '{}';
CREATE INDEX jobs_batches_idx ON jobs USING gin (batches);

-- Heartbeats extend the leases of one worker's jobs; requeues look them up by owner.
CREATE INDEX jobs_owner_idx ON jobs (lease_owner) WHERE state = 'running';
