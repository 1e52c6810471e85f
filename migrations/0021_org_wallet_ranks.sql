-- `topWallets` over the dashboard's standing ranges in time independent of the org's
-- size (issue 20). Ranking an org's wallets over a range needs every wallet's range
-- total: linear in the org's wallets, 0.2-1 s at 50,000 (two day-total slices joined,
-- sorted). For the ranges that end today and last 7, 30 or 90 days, this table keeps
-- each tracked wallet's totals ready, per org, with an index per ordering: the top N is
-- the first N entries of one index. See storage/ranks.py.
--
-- A row per (org, wallet, span) whose wallet traded in the span, holding its totals over
-- [through - span + 1, through] (`read_model_state.through` of 'org_wallet_ranks'):
-- the org-day rollups keep it, the scheduler moves it to each new UTC day, tracking adds and
-- removes rows (the foreign key drops them with the tracking), `hl-analytics rebuild`
-- recomputes it. NULL until the scheduler's first tick builds it; readers use the day
-- totals meanwhile.
CREATE TABLE org_wallet_ranks (
    wallet_id           bigint NOT NULL,
    org_id              uuid NOT NULL,
    span                smallint NOT NULL CHECK (span > 0),
    -- The wallet's (never changes): the ranking's tie-break, so that an index gives the
    -- whole order and a key many wallets share (no funding yet: all zero) reads no more
    -- than N entries either.
    address             text NOT NULL,
    trade_count         bigint NOT NULL,
    spot_volume_usd     numeric NOT NULL,
    perp_volume_usd     numeric NOT NULL,
    outcome_volume_usd  numeric NOT NULL,
    total_volume_usd    numeric NOT NULL,
    fees_usd            numeric NOT NULL,
    realized_pnl_usd    numeric NOT NULL,
    unpriced_fills      bigint NOT NULL,
    funding_usd         numeric NOT NULL,
    deposits_usd        numeric NOT NULL,
    withdrawals_usd     numeric NOT NULL,
    active_days         integer NOT NULL,
    -- Wallet first: a rollup rewrites the rows of the wallets it rebuilt (and the
    -- foreign key's cascade finds a pair's rows by its leading columns).
    PRIMARY KEY (wallet_id, org_id, span),
    FOREIGN KEY (org_id, wallet_id) REFERENCES org_wallets (org_id, wallet_id)
        ON DELETE CASCADE
);

-- One per ordering of `topWallets` (storage/dashboard.py's ORDERS): the key descending,
-- then the address.
CREATE INDEX org_wallet_ranks_volume
    ON org_wallet_ranks (org_id, span, total_volume_usd DESC, address);
CREATE INDEX org_wallet_ranks_trades
    ON org_wallet_ranks (org_id, span, trade_count DESC, address);
CREATE INDEX org_wallet_ranks_pnl
    ON org_wallet_ranks (org_id, span, realized_pnl_usd DESC, address);
CREATE INDEX org_wallet_ranks_fees ON org_wallet_ranks (org_id, span, fees_usd DESC, address);
CREATE INDEX org_wallet_ranks_net_pnl
    ON org_wallet_ranks (org_id, span, (realized_pnl_usd - fees_usd + funding_usd) DESC, address);
CREATE INDEX org_wallet_ranks_funding
    ON org_wallet_ranks (org_id, span, funding_usd DESC, address);

-- The (org, wallet) pairs whose rows are behind the running totals: a rollup of a day
-- inside the spans lists its wallets' pairs here, and the org's next org-day rollup
-- recomputes their rows (once however many rollups listed a pair meanwhile) in the
-- transaction that notifies the API of the org's change.
CREATE TABLE org_wallet_ranks_pending (
    org_id     uuid NOT NULL,
    wallet_id  bigint NOT NULL,
    PRIMARY KEY (org_id, wallet_id),
    FOREIGN KEY (org_id, wallet_id) REFERENCES org_wallets (org_id, wallet_id)
        ON DELETE CASCADE
);

INSERT INTO read_model_state (model, through) VALUES ('org_wallet_ranks', NULL);
