-- Per wallet, its running totals as of each day it has a wallet-day row (issue 20):
-- the sums of its `wallet_day_metrics` rows up to and including that day. The total of
-- any range of days is the last running total on or before its end minus the last one
-- before its start: two index lookups per wallet, whatever the range's length.
-- Derived from `wallet_day_metrics` only (storage/read_models.py keeps it, `hl-analytics
-- rebuild` recomputes it); the summed columns are listed once in that module.
CREATE TABLE wallet_running_totals (
    wallet_id           bigint NOT NULL REFERENCES wallets (id),
    day                 date NOT NULL,
    trade_count         bigint NOT NULL,
    spot_volume_usd     numeric NOT NULL,
    perp_volume_usd     numeric NOT NULL,
    outcome_volume_usd  numeric NOT NULL,
    total_volume_usd    numeric NOT NULL,
    fees_usd            numeric NOT NULL,
    realized_pnl_usd    numeric NOT NULL,
    unpriced_fills      bigint NOT NULL,
    -- Days up to this one with at least one trade fill.
    active_days         integer NOT NULL,
    PRIMARY KEY (wallet_id, day)
);

INSERT INTO wallet_running_totals
SELECT wallet_id, day,
       sum(trade_count) OVER w, sum(spot_volume_usd) OVER w, sum(perp_volume_usd) OVER w,
       sum(outcome_volume_usd) OVER w, sum(total_volume_usd) OVER w, sum(fees_usd) OVER w,
       sum(realized_pnl_usd) OVER w, sum(unpriced_fills) OVER w,
       count(*) FILTER (WHERE trade_count > 0) OVER w
FROM wallet_day_metrics
WINDOW w AS (PARTITION BY wallet_id ORDER BY day);

-- The same per wallet and coin, of `wallet_coin_day_metrics` (what `coinBreakdown` reads),
-- with `days`: the days up to this one with a row of the coin.
CREATE TABLE wallet_coin_running_totals (
    wallet_id         bigint NOT NULL REFERENCES wallets (id),
    coin              text NOT NULL,
    day               date NOT NULL,
    trade_count       bigint NOT NULL,
    volume_usd        numeric NOT NULL,
    fees_usd          numeric NOT NULL,
    realized_pnl_usd  numeric NOT NULL,
    unpriced_fills    bigint NOT NULL,
    days              integer NOT NULL,
    PRIMARY KEY (wallet_id, coin, day)
);
-- Every coin a wallet ever had a row of (its market follows the coin): the pairs whose
-- totals a range sums, without scanning the running totals to find them.
CREATE TABLE wallet_coins (
    wallet_id  bigint NOT NULL REFERENCES wallets (id),
    coin       text NOT NULL,
    market     text NOT NULL,
    PRIMARY KEY (wallet_id, coin)
);

INSERT INTO wallet_coin_running_totals
SELECT wallet_id, coin, day,
       sum(trade_count) OVER w, sum(volume_usd) OVER w, sum(fees_usd) OVER w,
       sum(realized_pnl_usd) OVER w, sum(unpriced_fills) OVER w, count(*) OVER w
FROM wallet_coin_day_metrics
WINDOW w AS (PARTITION BY wallet_id, coin ORDER BY day);
INSERT INTO wallet_coins (wallet_id, coin, market)
SELECT DISTINCT wallet_id, coin, market FROM wallet_coin_day_metrics;
