-- A second source of fills: a Hyperliquid node's fill files (jobs.node_source)
-- and the public archive (jobs.backfill).

-- Where a file-reading source got: the file (relative to its root), the byte
-- offset after the last whole line it stored, and the last block. Moved in the
-- same transaction as the fills it covers. `advanced_at` is when it last moved
-- (the scheduler stops polling the wallets a live node covers only while it moves).
CREATE TABLE hl_node_position (
    source           text PRIMARY KEY CHECK (length(source) BETWEEN 1 AND 500),
    file             text NOT NULL,
    byte_offset      bigint NOT NULL CHECK (byte_offset >= 0),
    last_block       bigint,
    last_block_ms    bigint,
    gaps             integer NOT NULL DEFAULT 0,
    last_gap         text,
    lines            bigint NOT NULL DEFAULT 0,
    fills_stored     bigint NOT NULL DEFAULT 0,
    done             boolean NOT NULL DEFAULT false,
    advanced_at      timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A malformed line of a file, or a fill of a user nobody tracks, belongs to no
-- wallet: the quarantine keeps it with where it was read.
ALTER TABLE hl_fills_quarantine ALTER COLUMN wallet_id DROP NOT NULL;
ALTER TABLE hl_fills_quarantine ADD COLUMN source_file text;
ALTER TABLE hl_fills_quarantine ADD COLUMN source_offset bigint;

-- From which UTC day a wallet's fills are known complete (an archive import that
-- reached from its first hour to the wallet's API history without a missing hour).
ALTER TABLE hl_ingest_cursor ADD COLUMN complete_from date;
