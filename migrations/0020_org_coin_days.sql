-- `coinBreakdown` of an org in time independent of its wallets (issue 20).
--
-- Summed per (wallet, coin) pair, a breakdown read two running totals per pair: 100,000
-- pairs at 50,000 wallets, 2-3 s. Its sums add up over wallets, so an org-level row per
-- coin and day answers them; its `wallets` (distinct wallets with a trade of the coin
-- in the range) does not add up over days, so each row also holds the set of the org's
-- wallets that traded the coin that day, as a bitmap: the range's count is the number of
-- bits set in the OR of its days' bitmaps. See storage/org_coins.py.

-- Each wallet's bit in its org's bitmaps: a number dense within the org, given on insert
-- (the org's largest plus one, under a lock of the org's row so concurrent inserts do
-- not collide).
ALTER TABLE org_wallets ADD COLUMN ordinal integer;
UPDATE org_wallets ow SET ordinal = n.ordinal
FROM (SELECT org_id, wallet_id,
             (row_number() OVER (PARTITION BY org_id ORDER BY created_at, wallet_id) - 1)::int
                 AS ordinal
      FROM org_wallets) n
WHERE n.org_id = ow.org_id AND n.wallet_id = ow.wallet_id;
ALTER TABLE org_wallets ALTER COLUMN ordinal SET NOT NULL;
ALTER TABLE org_wallets ADD CONSTRAINT org_wallets_ordinal_check CHECK (ordinal >= 0);
CREATE UNIQUE INDEX org_wallets_ordinal_idx ON org_wallets (org_id, ordinal);

CREATE FUNCTION org_wallets_ordinal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM orgs WHERE id = NEW.org_id FOR NO KEY UPDATE;
    NEW.ordinal := (SELECT coalesce(max(ordinal) + 1, 0) FROM org_wallets
                    WHERE org_id = NEW.org_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER org_wallets_ordinal BEFORE INSERT ON org_wallets
    FOR EACH ROW EXECUTE FUNCTION org_wallets_ordinal();

-- Per org, day and coin: the sums of the org's wallet-coin-days, and `traders`, bit n
-- (from the left) set when the wallet of ordinal n had a trade of the coin that day.
-- Rebuilt with the org-day (storage/rollups.py, rebuild_org_day); no row when none of
-- the org's wallets has a row of the coin that day.
CREATE TABLE org_coin_day_metrics (
    org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    day               date NOT NULL,
    coin              text NOT NULL,
    market            text NOT NULL CHECK (market IN ('perp', 'spot', 'outcome')),
    trade_count       bigint NOT NULL CHECK (trade_count >= 0),
    volume_usd        numeric NOT NULL,
    fees_usd          numeric NOT NULL,
    realized_pnl_usd  numeric NOT NULL,
    traders           bit varying NOT NULL,
    PRIMARY KEY (org_id, day, coin)
);

WITH m AS (
    SELECT ow.org_id, m.day, m.coin, m.market, m.trade_count, m.volume_usd, m.fees_usd,
           m.realized_pnl_usd, ow.ordinal
    FROM org_wallets ow JOIN wallet_coin_day_metrics m ON m.wallet_id = ow.wallet_id
),
sums AS (
    SELECT org_id, day, coin, min(market) AS market, sum(trade_count) AS trade_count,
           sum(volume_usd) AS volume_usd, sum(fees_usd) AS fees_usd,
           sum(realized_pnl_usd) AS realized_pnl_usd
    FROM m GROUP BY org_id, day, coin
),
bytes AS (
    SELECT org_id, day, coin, ordinal / 8 AS b, sum(128 >> (ordinal % 8))::int AS v
    FROM m WHERE trade_count > 0 GROUP BY org_id, day, coin, ordinal / 8
),
gaps AS (
    SELECT org_id, day, coin, b, v,
           b - coalesce(lag(b) OVER (PARTITION BY org_id, day, coin ORDER BY b), -1) - 1 AS gap
    FROM bytes
),
bits AS (
    SELECT org_id, day, coin,
           ('x' || string_agg(repeat('00', gap) || lpad(to_hex(v), 2, '0'), '' ORDER BY b))
               ::bit varying AS traders
    FROM gaps GROUP BY org_id, day, coin
)
INSERT INTO org_coin_day_metrics (org_id, day, coin, market, trade_count, volume_usd,
                                  fees_usd, realized_pnl_usd, traders)
SELECT s.org_id, s.day, s.coin, s.market, s.trade_count, s.volume_usd, s.fees_usd,
       s.realized_pnl_usd, coalesce(b.traders, B'')
FROM sums s LEFT JOIN bits b USING (org_id, day, coin);
