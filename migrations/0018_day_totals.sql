-- Every wallet's running totals on every day (issue 20), not only on its days with a
-- wallet-day row: a range's totals for all of an org's wallets are then two slices of
-- one day each (the range's end and the day before its start), read in key order,
-- where `wallet_running_totals` needs two index probes per wallet. A wallet has a row
-- on each day from its first wallet-day through `read_model_state.through`; derived
-- from `wallet_running_totals` only (storage/day_totals.py keeps it, the scheduler
-- extends it to each new UTC day, `hl-analytics rebuild` recomputes it).
-- The running totals' columns (migration 0014, with 0016's), keyed by day first.
CREATE TABLE wallet_day_totals (LIKE wallet_running_totals)
    WITH (fillfactor = 90);  -- today's rows are rewritten by every rollup: room for HOT updates
ALTER TABLE wallet_day_totals ADD PRIMARY KEY (day, wallet_id);

-- How far each dense read model is kept. NULL: not built yet (readers use the running
-- totals; the scheduler's next tick builds it).
CREATE TABLE read_model_state (
    model    text PRIMARY KEY,
    through  date
);
INSERT INTO read_model_state (model, through) VALUES ('wallet_day_totals', NULL);

-- Wallets whose day totals from `from_day` on are behind their running totals: a
-- rollup of a day before `through` (a late fill, a backfill of history) records the
-- wallet here instead of rewriting its day totals from that day to `through`, which a
-- backfill would do once per day of history. Readers take these wallets' range totals
-- from the running totals; the scheduler's tick brings their day totals up to date
-- once, from the earliest such day, and removes them.
CREATE TABLE wallet_day_totals_stale (
    wallet_id  bigint PRIMARY KEY,
    from_day   date NOT NULL
);
