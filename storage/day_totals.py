"""Day totals: every wallet's running totals on every day (migration 0018).

Why a second read model beside `wallet_running_totals` (storage/read_models.py):
ranking an org's wallets over a range needs every wallet's range total. From the
running totals that is two index probes per wallet (about 5 µs each on this 2-core
machine: 0.9-1.5 s at 50,000 wallets for 366 days, bench/bench_read_models.py). With
a row per wallet on every day, it is two slices of the primary key (day, wallet_id):
the range's end and the day before its start, each read in key order and merged,
whatever the range. The price is a row per wallet and day whatever its activity, so
the table is kept only through `read_model_state.through`, which the scheduler moves
to each new UTC day (`extend_day_totals`); a range ending after it is read from the
running totals.

Keeping it, with the running totals (`refresh_read_models`, in the rollup's
transaction):

- a rollup of `through`'s day (today: the live path) rewrites that day's row of each
  wallet it rebuilt;
- a rollup of an older day (a late fill, a backfill of history) would rewrite the
  wallet's rows from that day to `through`, once per day of a backfill. It records the
  wallet in `wallet_day_totals_stale` instead; readers take such a wallet's range
  total from its running totals (exact, the rollup wrote them), and the scheduler's
  tick brings its day totals up to date once, from its earliest such day
  (`freshen_day_totals`);
- `hl-analytics rebuild` of every wallet recomputes them after the running totals.

Concurrency: a refresh takes `through` FOR SHARE, the extension FOR UPDATE, so an
extension never copies a total that a rollup in flight is about to change: it waits
for those rollups to commit, and a rollup after it refreshes its wallets up to the new
`through` from the running totals it has just written. Freshening takes the wallets'
rollup locks (storage.rollups.lock_wallet_days) before it reads their stale days.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import date, timedelta

import psycopg

from storage import ranks, read_models, rollups

DAY_TOTALS = "wallet_day_totals"
COLUMNS = read_models.WALLETS.columns
STATE = read_models.State(DAY_TOTALS)
SELECT_THROUGH = STATE.select

# Wallets freshened in one transaction: as many as a rollup chunk (storage.rollups'
# PENDING_CHUNK) locks, which the lock table is sized for.
FRESHEN_BATCH = 500

_MARK_STALE = """
INSERT INTO wallet_day_totals_stale (wallet_id, from_day)
SELECT unnest(%(wallet_ids)s::bigint[]), %(day)s
ON CONFLICT (wallet_id) DO UPDATE SET from_day = least(wallet_day_totals_stale.from_day,
                                                      EXCLUDED.from_day)
"""
# Oldest first, so that a batch (refreshed from its earliest day) holds wallets stale
# from about the same day: a backfill's wallets together.
_STALE_CANDIDATES = """
SELECT wallet_id FROM wallet_day_totals_stale ORDER BY from_day, wallet_id LIMIT %s
"""
_TAKE_STALE = """
DELETE FROM wallet_day_totals_stale WHERE wallet_id = ANY(%(wallet_ids)s)
RETURNING wallet_id, from_day
"""
_FORGET_STALE_FROM = "DELETE FROM wallet_day_totals_stale WHERE from_day >= %(day)s"

# The wallets' day totals from `day` through `through`, from their running totals: each
# running-total row (and the last one before `day`) holds from its day until the
# wallet's next row. Rows of days before a wallet's first running total go (its history
# lost its first days); rows already right are not rewritten.
_REFRESH = """
/* rebuild: INSERT INTO wallet_day_totals */
WITH w AS ({wallets}),
src AS (
    SELECT r.*, lead(r.day) OVER (PARTITION BY r.wallet_id ORDER BY r.day) AS next_day
    FROM (
        SELECT b.* FROM w CROSS JOIN LATERAL (
            SELECT * FROM wallet_running_totals r
            WHERE r.wallet_id = w.id AND r.day < %(day)s
            ORDER BY r.day DESC LIMIT 1
        ) b
        UNION ALL
        SELECT r.* FROM wallet_running_totals r
        WHERE r.day BETWEEN %(day)s AND %(through)s {r_filter}
    ) r
),
held AS (
    SELECT g.day::date AS day, s.wallet_id, {s_cols}
    FROM src s
    CROSS JOIN LATERAL generate_series(
        greatest(s.day, %(day)s::date),
        least(coalesce(s.next_day - 1, %(through)s::date), %(through)s::date),
        interval '1 day'
    ) g(day)
),
-- A wallet's rows are contiguous up to `through`: it has some to lose only if it has one
-- there.
gone AS (
    DELETE FROM wallet_day_totals t
    USING (
        SELECT w.id, g.day::date AS day
        FROM w
        CROSS JOIN LATERAL generate_series(
            %(day)s::date,
            least(coalesce((SELECT min(r.day) FROM wallet_running_totals r
                            WHERE r.wallet_id = w.id), %(through)s::date + 1) - 1,
                  %(through)s::date),
            interval '1 day'
        ) g(day)
        WHERE EXISTS (SELECT 1 FROM wallet_day_totals e
                      WHERE e.day = %(through)s AND e.wallet_id = w.id)
    ) x
    WHERE t.day = x.day AND t.wallet_id = x.id
)
INSERT INTO wallet_day_totals AS t (day, wallet_id, {cols})
-- In key order: a build or a rebuild then lays each day's rows out together, so that a
-- day's slice reads few pages (a new day's rows, and updates that stay on their page
-- under the fill factor, keep it so).
SELECT day, wallet_id, {cols} FROM held ORDER BY day, wallet_id
ON CONFLICT (day, wallet_id) DO UPDATE SET
    {update}
WHERE {differs}
"""


def _refresh_sql(wallet_filter: bool) -> str:
    return _REFRESH.format(
        wallets="SELECT unnest(%(wallet_ids)s::bigint[]) AS id"
        if wallet_filter
        else "SELECT id FROM wallets",
        r_filter="AND r.wallet_id = ANY(%(wallet_ids)s)" if wallet_filter else "",
        s_cols=", ".join(f"s.{c}" for c in COLUMNS),
        cols=", ".join(COLUMNS),
        update=",\n    ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS),
        differs=" OR ".join(f"t.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in COLUMNS),
    )


# Two statements, not a NULL test on a parameter, so each has its own plan.
REFRESH = _refresh_sql(True)
REFRESH_ALL = _refresh_sql(False)


def _refresh(
    conn: psycopg.Connection, wallet_ids: Sequence[int] | None, day: date, through: date
) -> int:
    params: dict[str, object] = {"day": day, "through": through}
    if wallet_ids is None:
        return conn.execute(REFRESH_ALL, params).rowcount
    params["wallet_ids"] = list(wallet_ids)
    return conn.execute(REFRESH, params).rowcount


def refresh_read_models(
    conn: psycopg.Connection,
    wallet_ids: Sequence[int] | None,
    day: date,
    *,
    one_day: bool = False,
) -> int:
    """Recomputes the wallets' (None: every wallet's) running totals from `day` on, then
    keeps their day totals (see above) and standing ranks (storage/ranks.py), in the
    caller's transaction, which holds the locks of those wallets' rebuilds; `one_day`:
    only `day`'s wallet-days changed (a rollup). Returns the rows written."""
    written = read_models.refresh_running_totals(conn, wallet_ids, day)
    written += _refresh_day_totals(conn, wallet_ids, day)
    return written + ranks.refresh(conn, wallet_ids, day, one_day=one_day)


def _refresh_day_totals(
    conn: psycopg.Connection, wallet_ids: Sequence[int] | None, day: date
) -> int:
    through = STATE.share(conn)
    if through is None or day > through:
        return 0
    if wallet_ids is None:
        written = _refresh(conn, None, day, through)
        conn.execute(_FORGET_STALE_FROM, {"day": day})
        return written
    if day == through:
        return _refresh(conn, wallet_ids, day, through)
    if wallet_ids:
        conn.execute(_MARK_STALE, {"wallet_ids": sorted(set(wallet_ids)), "day": day})
    return 0


def freshen_day_totals(conn: psycopg.Connection, limit: int = FRESHEN_BATCH) -> int:
    """Brings up to `limit` stale wallets' day totals up to date from their earliest
    stale day and forgets them, in the caller's transaction; returns the wallets done."""
    candidates = [r[0] for r in conn.execute(_STALE_CANDIDATES, (limit,))]
    if not candidates:
        return 0
    rollups.lock_wallet_days(conn, candidates)  # no rollup of theirs in flight from here
    taken = conn.execute(_TAKE_STALE, {"wallet_ids": candidates}).fetchall()
    through = STATE.share(conn)
    if taken and through is not None:
        _refresh(conn, [w for w, _ in taken], min(d for _, d in taken), through)
    return len(taken)


def freshen_all(conn: psycopg.Connection, until: float = math.inf) -> int:
    """Freshens stale wallets a batch a transaction on `conn` (autocommit, or idle) until
    none is left or time.monotonic() passes `until`; returns the wallets done."""
    done = 0
    while time.monotonic() < until:
        with conn.transaction():
            batch = freshen_day_totals(conn)
        if not batch:
            break
        done += batch
    return done


def extend_day_totals(conn: psycopg.Connection, today: date) -> int:
    """Keeps the day totals through `today` (building them the first time), in the
    caller's transaction; returns the rows written (0 when they already reach it)."""
    moved, through = STATE.advance(conn, today)
    if not moved:
        return 0
    if through is None:
        first = conn.execute("SELECT min(day) FROM wallet_running_totals").fetchone()
        start = first[0] if first is not None and first[0] is not None else today
    else:
        start = through + timedelta(days=1)
    return _refresh(conn, None, min(start, today), today)


# -- reading ---------------------------------------------------------------------------

# The org's wallets' totals over [start, end] (parameters org_id, start, end; `end` at
# most `through`): the end's day totals minus the day before the start's, for every
# wallet with history up to the end (zero where nothing changed in the range), except
# wallets stale at or before the end, whose totals come from their running totals.
_TOTALS = """
    SELECT e.wallet_id, ow.address, {diffs}
    FROM org_wallets ow
    JOIN wallet_day_totals e ON e.day = %(end)s AND e.wallet_id = ow.wallet_id
    LEFT JOIN wallet_day_totals s ON s.day = %(start)s::date - 1 AND s.wallet_id = ow.wallet_id
    WHERE ow.org_id = %(org_id)s
      AND NOT EXISTS (SELECT 1 FROM wallet_day_totals_stale x
                      WHERE x.wallet_id = ow.wallet_id AND x.from_day <= %(end)s)
    UNION ALL
    SELECT {columns} FROM ({stale}) st"""
_STALE_PAIRS = """AND ow.wallet_id IN (SELECT x.wallet_id FROM wallet_day_totals_stale x
                                     WHERE x.from_day <= %(end)s)"""


def totals_sql(start: date, end: date) -> str:
    """A subquery of the org's wallets' totals over [start, end] from the day totals (the
    caller checked that they reach `end`): wallet_id and every summed column."""
    stale = read_models.range_totals_sql(read_models.WALLETS, start, end, wallets_also=_STALE_PAIRS)
    return _TOTALS.format(
        diffs=", ".join(f"e.{c} - coalesce(s.{c}, 0) AS {c}" for c in COLUMNS),
        columns=", ".join(("wallet_id", "address", *COLUMNS)),
        stale=stale,
    )
