-- Funding payments, ledger updates and account snapshots (issue 16).
--
-- Funding payments: one row per wallet, hour and coin, as `userFunding`
-- reports them. Their hash is always zero, so (wallet, time, coin) is the identity;
-- re-fetching a payment stores it once. `usdc` is signed as returned (negative = paid)
-- and is in the perp dex's collateral (the field is named usdc on every dex).
CREATE TABLE hl_funding (
    wallet_id     bigint NOT NULL REFERENCES wallets (id),
    time          bigint NOT NULL,
    coin          text NOT NULL,
    usdc          numeric NOT NULL,
    szi           numeric NOT NULL,
    funding_rate  numeric NOT NULL,
    n_samples     integer,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_id, time, coin)
);
-- The rebuild of every wallet of one day reads a day's payments by time alone.
CREATE INDEX hl_funding_time_idx ON hl_funding (time);

-- Funding entries that failed validation, with why (like hl_fills_quarantine).
CREATE TABLE hl_funding_quarantine (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet_id   bigint NOT NULL REFERENCES wallets (id),
    raw         jsonb NOT NULL,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hl_funding_quarantine_wallet_idx ON hl_funding_quarantine (wallet_id, received_at);

-- How far each wallet's ingest of a data kind other than fills got, and how it last
-- went; `synced_until_ms` only moves in the transaction that stored what it covers.
CREATE TABLE hl_kind_cursor (
    wallet_id          bigint NOT NULL REFERENCES wallets (id),
    kind               text NOT NULL CHECK (kind IN ('funding', 'positions', 'ledger')),
    synced_until_ms    bigint,
    items_stored       bigint NOT NULL DEFAULT 0,
    last_success_at    timestamptz,
    last_error         text,
    last_error_at      timestamptz,
    last_scheduled_at  timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_id, kind)
);

-- Non-funding ledger updates (`userNonFundingLedgerUpdates`): one row per update, its
-- delta kept whole. Identity: (wallet, time, hash) and, where the hash is zero, a digest
-- of the delta's own fields (`delta_key`, '' otherwise). `class` is the README's table
-- of update types; `usdc` the USDC amount it counts with (a withdrawal's fee included,
-- a spot transfer's `usdcValue`), NULL when it has none.
CREATE TABLE hl_ledger (
    wallet_id    bigint NOT NULL REFERENCES wallets (id),
    time         bigint NOT NULL,
    hash         text NOT NULL,
    delta_key    text NOT NULL,
    type         text NOT NULL,
    class        text NOT NULL CHECK (class IN ('deposit', 'withdrawal', 'neither',
                                                'vault_deposit', 'vault_withdrawal', 'unknown')),
    usdc         numeric,
    delta        jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_id, time, hash, delta_key)
);
CREATE INDEX hl_ledger_time_idx ON hl_ledger (time);
CREATE INDEX hl_ledger_unknown_idx ON hl_ledger (type) WHERE class = 'unknown';
CREATE TABLE hl_ledger_quarantine (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet_id   bigint NOT NULL REFERENCES wallets (id),
    raw         jsonb NOT NULL,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hl_ledger_quarantine_wallet_idx ON hl_ledger_quarantine (wallet_id, received_at);

-- A wallet-day's (and an org-day's) funding, deposits and withdrawals in USD; a day with
-- any of them and no fill now has a row too. Existing rows had none stored: 0 is theirs.
ALTER TABLE wallet_day_metrics ADD COLUMN funding_usd numeric NOT NULL DEFAULT 0,
                               ADD COLUMN deposits_usd numeric NOT NULL DEFAULT 0,
                               ADD COLUMN withdrawals_usd numeric NOT NULL DEFAULT 0;
ALTER TABLE global_day_metrics ADD COLUMN funding_usd numeric NOT NULL DEFAULT 0,
                               ADD COLUMN deposits_usd numeric NOT NULL DEFAULT 0,
                               ADD COLUMN withdrawals_usd numeric NOT NULL DEFAULT 0;

-- Account snapshots (`clearinghouseState` of each dex the wallet trades, and
-- `spotClearinghouseState`): the latest positions and balances, replaced by each newer
-- snapshot, and one row per UTC day holding that day's last snapshot's totals (the
-- latest snapshot is the newest day's row). USD sums count only what is held in a USD
-- stablecoin (a dex's collateral, a spot balance); other balances are kept unpriced.
CREATE TABLE wallet_positions (
    wallet_id           bigint NOT NULL REFERENCES wallets (id),
    coin                text NOT NULL,
    dex                 text NOT NULL,
    size                numeric NOT NULL,
    entry_px            numeric,
    position_value      numeric NOT NULL,
    unrealized_pnl      numeric NOT NULL,
    leverage_type       text NOT NULL CHECK (leverage_type IN ('cross', 'isolated')),
    leverage            numeric NOT NULL,
    liquidation_px      numeric,
    margin_used         numeric NOT NULL,
    funding_since_open  numeric NOT NULL,
    usd_priced          boolean NOT NULL,
    PRIMARY KEY (wallet_id, coin)
);
CREATE TABLE wallet_balances (
    wallet_id   bigint NOT NULL REFERENCES wallets (id),
    coin        text NOT NULL,
    total       numeric NOT NULL,
    hold        numeric NOT NULL,
    entry_ntl   numeric,
    usd_priced  boolean NOT NULL,
    PRIMARY KEY (wallet_id, coin)
);
CREATE TABLE wallet_account_days (
    wallet_id           bigint NOT NULL REFERENCES wallets (id),
    day                 date NOT NULL,
    taken_ms            bigint NOT NULL,
    account_value_usd   numeric NOT NULL,
    unrealized_pnl_usd  numeric NOT NULL,
    open_positions      integer NOT NULL CHECK (open_positions >= 0),
    PRIMARY KEY (wallet_id, day)
);
