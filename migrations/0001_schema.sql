-- The whole data model of DESIGN.md: organisations and their wallets, raw fills
-- (partitioned by month), the ingest cursor, derived daily metrics and the job queue.

CREATE TABLE orgs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per address, whatever number of orgs track it: fills are fetched and
-- stored once per wallet. The surrogate id keeps the fills table narrow.
CREATE TABLE wallets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address     text NOT NULL UNIQUE CONSTRAINT wallets_address_format CHECK (address ~ '^0x[0-9a-f]{40}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE org_wallets (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    wallet_id   bigint NOT NULL REFERENCES wallets (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, wallet_id)
);
CREATE INDEX org_wallets_wallet_idx ON org_wallets (wallet_id);

CREATE TABLE user_profiles (
    user_id     text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 255),
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    role        text NOT NULL CONSTRAINT user_profiles_role CHECK (role IN ('admin', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_profiles_org_idx ON user_profiles (org_id);

-- Every field of a Hyperliquid fill, typed. `time` is epoch milliseconds as the
-- API sends it, and the partition key: months are ranges of milliseconds.
-- No foreign key to wallets: wallets are never deleted, and a per-row FK check
-- would cost a large share of the ingest throughput.
CREATE TABLE hl_fills_raw (
    wallet_id           bigint NOT NULL,
    time                bigint NOT NULL CHECK (time >= 0),
    tid                 bigint NOT NULL,
    oid                 bigint NOT NULL,
    coin                text NOT NULL,
    side                text NOT NULL CHECK (side IN ('B', 'A')),
    px                  numeric NOT NULL CHECK (px >= 0),
    sz                  numeric NOT NULL CHECK (sz >= 0),
    dir                 text NOT NULL,
    start_position      numeric NOT NULL,
    closed_pnl          numeric NOT NULL,
    fee                 numeric NOT NULL,
    fee_token           text NOT NULL,
    builder_fee         numeric,
    hash                text NOT NULL,
    crossed             boolean NOT NULL,
    cloid               text,
    twap_id             bigint,
    liquidated_user     text,
    liquidation_mark_px numeric,
    liquidation_method  text,
    ingested_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT hl_fills_raw_identity PRIMARY KEY (wallet_id, tid, oid, time)
) PARTITION BY RANGE (time);

CREATE TABLE hl_fills_raw_default PARTITION OF hl_fills_raw DEFAULT;
CREATE INDEX hl_fills_raw_wallet_time_idx ON hl_fills_raw (wallet_id, time);

-- Fills that failed validation, kept for inspection instead of being dropped.
CREATE TABLE hl_fills_quarantine (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet_id   bigint NOT NULL REFERENCES wallets (id),
    raw         jsonb NOT NULL,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hl_fills_quarantine_wallet_idx ON hl_fills_quarantine (wallet_id, received_at);

-- How far ingestion of each wallet got. `synced_until_ms` only moves in the
-- same transaction as the fills it covers.
CREATE TABLE hl_ingest_cursor (
    wallet_id        bigint PRIMARY KEY REFERENCES wallets (id),
    synced_until_ms  bigint,
    last_fill_ms     bigint,
    fills_stored     bigint NOT NULL DEFAULT 0,
    history_truncated boolean NOT NULL DEFAULT false,
    last_success_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE wallet_day_metrics (
    wallet_id         bigint NOT NULL REFERENCES wallets (id),
    day               date NOT NULL,
    trade_count       integer NOT NULL CHECK (trade_count >= 0),
    spot_volume_usd   numeric NOT NULL,
    perp_volume_usd   numeric NOT NULL,
    total_volume_usd  numeric GENERATED ALWAYS AS (spot_volume_usd + perp_volume_usd) STORED,
    fees_usd          numeric NOT NULL,
    realized_pnl_usd  numeric NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_id, day)
);
CREATE INDEX wallet_day_metrics_day_idx ON wallet_day_metrics (day, wallet_id);

CREATE TABLE global_day_metrics (
    org_id               uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    day                  date NOT NULL,
    dau                  integer NOT NULL CHECK (dau >= 0),
    trade_count          integer NOT NULL CHECK (trade_count >= 0),
    spot_volume_usd      numeric NOT NULL,
    perp_volume_usd      numeric NOT NULL,
    total_volume_usd     numeric NOT NULL,
    fees_usd             numeric NOT NULL,
    realized_pnl_usd     numeric NOT NULL,
    avg_volume_per_user  numeric NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, day)
);

-- The broker's queue. One row per delivery of a Dramatiq message.
CREATE TABLE jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    text NOT NULL,
    queue         text NOT NULL,
    actor         text NOT NULL,
    message       jsonb NOT NULL,
    state         text NOT NULL DEFAULT 'queued'
                  CONSTRAINT jobs_state CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    run_at        timestamptz NOT NULL DEFAULT now(),
    dedup_key     text,
    dedup_running boolean NOT NULL DEFAULT false,
    lease_owner   text,
    lease_expires_at timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_fetch_idx ON jobs (queue, run_at) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_finished_idx ON jobs (updated_at) WHERE state IN ('done', 'failed');
CREATE UNIQUE INDEX jobs_dedup_key ON jobs (dedup_key)
    WHERE state = 'queued' OR (state = 'running' AND dedup_running);

CREATE TABLE job_workers (
    worker_id     text PRIMARY KEY,
    hostname      text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);
