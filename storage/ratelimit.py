"""The shared request schedule of the Hyperliquid rate limiter (`hl_rate_limit`).

A reservation is one atomic `INSERT … ON CONFLICT DO UPDATE … RETURNING`: the
row lock serialises concurrent callers, the slot handed out is the later of
the row's `next_slot` and the database's clock, and the row moves on by the
reservation's cost. The database's clock (`clock_timestamp()`) is the only
clock, so hosts with skewed clocks still share one schedule.
"""

from __future__ import annotations

import psycopg

# Returns how many seconds the caller waits for its slot (<= 0: go now).
RESERVE_SLOT = """
INSERT INTO hl_rate_limit AS r (name, next_slot)
VALUES (%(name)s, clock_timestamp() + make_interval(secs => %(cost_s)s))
ON CONFLICT (name) DO UPDATE
    SET next_slot = greatest(r.next_slot, clock_timestamp()) + make_interval(secs => %(cost_s)s),
        updated_at = now()
RETURNING extract(epoch FROM r.next_slot - clock_timestamp())::float8 - %(cost_s)s
"""
# Pushes the schedule back without waiting: weight learnt after the request was answered.
CHARGE = """
UPDATE hl_rate_limit AS r
SET next_slot = greatest(r.next_slot, clock_timestamp()) + make_interval(secs => %(cost_s)s),
    updated_at = now()
WHERE name = %(name)s
"""

# Nobody's slot comes before `pause_s` from now (the API asked us to wait that long).
PAUSE = """
UPDATE hl_rate_limit AS r
SET next_slot = greatest(r.next_slot, clock_timestamp() + make_interval(secs => %(pause_s)s)),
    updated_at = now()
WHERE name = %(name)s
"""


def reserve_slot(conn: psycopg.Connection, name: str, cost_s: float) -> float:
    """Reserves the next `cost_s` seconds of the schedule; returns the wait before them."""
    row = conn.execute(RESERVE_SLOT, {"name": name, "cost_s": cost_s}).fetchone()
    return float(row[0]) if row else 0.0


def charge(conn: psycopg.Connection, name: str, cost_s: float) -> None:
    conn.execute(CHARGE, {"name": name, "cost_s": cost_s})


def pause(conn: psycopg.Connection, name: str, pause_s: float) -> None:
    conn.execute(PAUSE, {"name": name, "pause_s": pause_s})
