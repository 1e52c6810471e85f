-- What dashboard builders query (issue 17).
--
-- An org's own label for a wallet it tracks: up to 64 printable characters, NULL
-- when it has none. The API checks the same rule first and says what is wrong.
ALTER TABLE org_wallets
    ADD COLUMN label text
        CONSTRAINT org_wallets_label CHECK (
            label IS NULL OR (char_length(label) BETWEEN 1 AND 64 AND label !~ '[[:cntrl:]]'));

-- Per wallet, coin and UTC day: what `coinBreakdown` and `WalletMetrics.coins` read.
-- Rebuilt by the same statements as `wallet_day_metrics` (storage/rollups.py), whose
-- wallet-day is the sum of these rows; `market` follows the coin (hl_fills_raw.market).
CREATE TABLE wallet_coin_day_metrics (
    wallet_id         bigint NOT NULL REFERENCES wallets (id),
    day               date NOT NULL,
    coin              text NOT NULL,
    market            text NOT NULL CHECK (market IN ('perp', 'spot', 'outcome')),
    trade_count       integer NOT NULL CHECK (trade_count >= 0),
    volume_usd        numeric NOT NULL,
    fees_usd          numeric NOT NULL,
    realized_pnl_usd  numeric NOT NULL,
    unpriced_fills    integer NOT NULL DEFAULT 0 CHECK (unpriced_fills >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_id, day, coin)
);
CREATE INDEX wallet_coin_day_metrics_day_idx ON wallet_coin_day_metrics (day, wallet_id);

-- The days rolled up before this table existed are rolled up again by the workers:
-- every wallet-day becomes pending and each of its days gets one `rollup_wallet_days`
-- message (joining one already queued), as an ingest would have queued it.
INSERT INTO rollup_pending (day, wallet_id)
SELECT day, wallet_id FROM wallet_day_metrics
ON CONFLICT (day, wallet_id) DO NOTHING;

WITH message AS (
    SELECT day, gen_random_uuid()::text AS message_id
    FROM (SELECT DISTINCT day FROM wallet_day_metrics) AS days
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
       'rollup_wallet_days:' || day::text, '{}'
FROM message
ON CONFLICT (dedup_key)
    WHERE dedup_key IS NOT NULL AND (state = 'queued' OR (state = 'running' AND dedup_running))
DO NOTHING;

NOTIFY hl_jobs, 'rollups';
