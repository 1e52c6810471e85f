-- The shared request schedule of Hyperliquid's API (jobs/ratelimit.py): one row
-- per limiter, holding the earliest time the next request may be sent. Every
-- worker process and host reserves its slot here, so the rate holds across all.
CREATE TABLE hl_rate_limit (
    name       text PRIMARY KEY,
    next_slot  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
