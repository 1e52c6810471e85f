-- Wallet-days whose fills changed and whose rollup is still to run. An ingest page
-- inserts its (wallet, day) pairs here in the transaction that stores the fills, and
-- queues one `rollup_wallet_days(day)` job per day; that job takes the day's rows in
-- bounded chunks (deleting them in its own transaction) and rebuilds them with one
-- statement. `batches` are the sync batches of the ingests that added the row, so the
-- org-day rollups the chunk causes count towards those batches (`sync --wait`).
-- Keyed by day first: a rollup job reads one day's rows in wallet order.
CREATE TABLE rollup_pending (
    day        date NOT NULL,
    wallet_id  bigint NOT NULL REFERENCES wallets (id),
    batches    text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (day, wallet_id)
);
