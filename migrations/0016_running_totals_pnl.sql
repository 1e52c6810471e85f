-- The running totals (migration 0014) of the per-wallet-day columns migration 0015
-- added: funding, deposits and withdrawals (storage/read_models.py's SUMMED). Every
-- wallet-day row has 0 in them when this runs (0015 added them with that default and
-- nothing has filled them since), so 0 is also each running total: exact, no recompute.
ALTER TABLE wallet_running_totals
    ADD COLUMN funding_usd      numeric NOT NULL DEFAULT 0,
    ADD COLUMN deposits_usd     numeric NOT NULL DEFAULT 0,
    ADD COLUMN withdrawals_usd  numeric NOT NULL DEFAULT 0;
