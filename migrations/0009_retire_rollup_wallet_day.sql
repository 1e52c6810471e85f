-- The one-job-per-wallet `rollup_wallet_day(address, day)` actor is retired (0006
-- replaced it with `rollup_pending` and `rollup_wallet_days(day)`). Its messages still
-- queued, or running on a worker of the previous version, become pending wallet-days
-- (with their sync batches), and each of their days gets one `rollup_wallet_days`
-- message unless one is queued already (then it joins that message's batches). A
-- running one's worker finds its row gone: its ack changes nothing, and the pending
-- wallet-day is rebuilt again, which is harmless (a rebuild is never an increment).

CREATE TEMPORARY TABLE legacy_wallet_days ON COMMIT DROP AS
SELECT j.id, (j.message -> 'args' ->> 1)::date AS day, w.id AS wallet_id, j.batches
FROM jobs j
JOIN wallets w ON w.address = lower(j.message -> 'args' ->> 0)
WHERE j.actor = 'rollup_wallet_day' AND j.state IN ('queued', 'running');

INSERT INTO rollup_pending (day, wallet_id, batches)
SELECT day, wallet_id,
       ARRAY(SELECT DISTINCT b FROM legacy_wallet_days l2, unnest(l2.batches) AS b
             WHERE l2.day = l.day AND l2.wallet_id = l.wallet_id)
FROM legacy_wallet_days l
GROUP BY day, wallet_id
ON CONFLICT (day, wallet_id) DO UPDATE
SET batches = ARRAY(SELECT DISTINCT b FROM unnest(rollup_pending.batches || EXCLUDED.batches) b);

WITH days AS (
    SELECT day,
           ARRAY(SELECT DISTINCT b FROM legacy_wallet_days l2, unnest(l2.batches) AS b
                 WHERE l2.day = l.day) AS batches
    FROM legacy_wallet_days l
    GROUP BY day
), message AS (
    SELECT day, batches, gen_random_uuid()::text AS message_id FROM days
)
INSERT INTO jobs (message_id, queue, actor, message, dedup_key, batches)
SELECT message_id, 'rollups', 'rollup_wallet_days',
       jsonb_build_object(
           'queue_name', 'rollups',
           'actor_name', 'rollup_wallet_days',
           'args', jsonb_build_array(day::text),
           'kwargs', '{}'::jsonb,
           'options', '{}'::jsonb,
           'message_id', message_id,
           'message_timestamp', (extract(epoch FROM clock_timestamp()) * 1000)::bigint
       ),
       'rollup_wallet_days:' || day::text, batches
FROM message
ON CONFLICT (dedup_key)
    WHERE dedup_key IS NOT NULL AND (state = 'queued' OR (state = 'running' AND dedup_running))
DO UPDATE SET batches = ARRAY(SELECT DISTINCT b FROM unnest(jobs.batches || EXCLUDED.batches) b);

DELETE FROM jobs WHERE id IN (SELECT id FROM legacy_wallet_days);

-- Legacy messages of a wallet no longer in `wallets` (none should exist) have nothing
-- to rebuild: they go too.
DELETE FROM jobs WHERE actor = 'rollup_wallet_day' AND state IN ('queued', 'running');

NOTIFY hl_jobs, 'rollups';
