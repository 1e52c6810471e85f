"""Read models: what makes a range of days cheap to read whatever its length.

`wallet_running_totals` (migration 0014) holds, per wallet and per day it has a
`wallet_day_metrics` row, the sums of its wallet-days up to and including that
day. A wallet's total over [start, end] is its last running total on or before
`end` minus its last one before `start`: two lookups in the primary key
(wallet_id, day), whatever the range's length, where summing the wallet-days
reads up to 366 rows per wallet.

Why this one (bench/spike_read_models.py, this 2-core machine, one org of 50,000
wallets and 366 days with two of every three wallet-days active, top 50 by
volume; median ms of the statement; `months` = per wallet-month sums plus the
range's partial months from the days, `cum months` = running totals at month
ends plus the partial months):

    range                 days (today)  running totals  months  cum months
    366 days                   SPIKE_366
    90 days ending today       SPIKE_90
    7 days ending today        SPIKE_7
    180 days in the middle     SPIKE_180

Running totals cost the same for every range (two probes per wallet), the others
grow with the partial months a range cuts. Short ranges are cheaper summed from
the days (`SHORT_RANGE_DAYS`): they read fewer rows than two probes per wallet.

Keeping it: a rollup of wallet-days on `day` recomputes the running totals of
those wallets from `day` on (`REFRESH_RUNNING_TOTALS`, in the same transaction,
under the same per-wallet locks). For today that is one row per wallet. A late
fill on an old day rewrites that wallet's later rows: at most one per later day
with activity (366 for a year), only for the wallets the rollup rebuilt. The
rows are a pure function of `wallet_day_metrics`, so recomputing them (what
`hl-analytics rebuild` does once after its days, `refresh_running_totals`) gives
the same rows as the rollups did, in any order of arrival.

Adding a summed column (e.g. a new per-wallet-day metric): add it to `SUMMED`
below, and in a new migration `ALTER TABLE wallet_running_totals ADD COLUMN <name>
numeric NOT NULL DEFAULT 0` followed by the running sums of the existing rows
(the INSERT of migration 0014, as an UPDATE), or ask operators to run
`hl-analytics rebuild`. Every statement here and the API's range totals
(storage/dashboard.py) are generated from `SUMMED`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import psycopg

# The per-wallet-day columns a range sums: `wallet_day_metrics` columns of the same
# name. `active_days` (days with a trade) is kept beside them.
SUMMED = (
    "trade_count",
    "spot_volume_usd",
    "perp_volume_usd",
    "outcome_volume_usd",
    "total_volume_usd",
    "fees_usd",
    "realized_pnl_usd",
    "unpriced_fills",
)
COLUMNS = (*SUMMED, "active_days")

# Ranges of at most this many days are summed from `wallet_day_metrics` (see above).
SHORT_RANGE_DAYS = 14


def _running(source: str) -> str:
    sums = [f"sum({source}.{c}) OVER w AS {c}" for c in SUMMED]
    sums.append(f"count(*) FILTER (WHERE {source}.trade_count > 0) OVER w AS active_days")
    return ", ".join(sums)


_COLS = ", ".join(COLUMNS)
_UPDATE = ",\n    ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)
_DIFFERS = " OR ".join(f"r.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in COLUMNS)
_BASE_PLUS = ", ".join(f"coalesce(b.{c}, 0) + f.{c} AS {c}" for c in COLUMNS)

# The running totals of the wallets (all: NULL) from `day` on, recomputed from their
# wallet-days: the last total before `day` plus the running sums from `day`. Rows of
# days that lost their wallet-day go; rows already right are not rewritten.
_REFRESH_RUNNING_TOTALS = """
/* rebuild: INSERT INTO wallet_running_totals */
WITH fresh AS (
    SELECT m.wallet_id, m.day, {running}
    FROM wallet_day_metrics m
    WHERE m.day >= %(day)s {m_filter}
    WINDOW w AS (PARTITION BY m.wallet_id ORDER BY m.day)
),
totals AS (
    SELECT f.wallet_id, f.day, {base_plus}
    FROM fresh f
    LEFT JOIN LATERAL (
        SELECT * FROM wallet_running_totals r
        WHERE r.wallet_id = f.wallet_id AND r.day < %(day)s
        ORDER BY r.day DESC LIMIT 1
    ) b ON true
),
gone AS (
    DELETE FROM wallet_running_totals r
    WHERE r.day >= %(day)s {r_filter}
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.wallet_id = r.wallet_id AND f.day = r.day)
)
INSERT INTO wallet_running_totals AS r (wallet_id, day, {cols})
SELECT wallet_id, day, {cols} FROM totals
ON CONFLICT (wallet_id, day) DO UPDATE SET
    {update}
WHERE {differs}
"""
_PARTS = {
    "running": _running("m"),
    "base_plus": _BASE_PLUS,
    "cols": _COLS,
    "update": _UPDATE,
    "differs": _DIFFERS,
}
# Two statements, not a NULL test on the parameter, so each has its own plan.
REFRESH_RUNNING_TOTALS = _REFRESH_RUNNING_TOTALS.format(
    **_PARTS,
    m_filter="AND m.wallet_id = ANY(%(wallet_ids)s)",
    r_filter="AND r.wallet_id = ANY(%(wallet_ids)s)",
)
REFRESH_ALL_RUNNING_TOTALS = _REFRESH_RUNNING_TOTALS.format(**_PARTS, m_filter="", r_filter="")


def refresh_running_totals(
    conn: psycopg.Connection, wallet_ids: Sequence[int] | None, day: date
) -> int:
    """Recomputes the wallets' (None: every wallet's) running totals from `day` on, in the
    caller's transaction, which holds the locks of those wallets' rebuilds."""
    if wallet_ids is None:
        return conn.execute(REFRESH_ALL_RUNNING_TOTALS, {"day": day}).rowcount
    params = {"day": day, "wallet_ids": list(wallet_ids)}
    return conn.execute(REFRESH_RUNNING_TOTALS, params).rowcount


# A range's totals per wallet of the org, as a subquery `t` (wallet_id, COLUMNS):
# short ranges from the wallet-days, longer ones from two running totals per wallet.
_RANGE_FROM_DAYS = (
    "SELECT m.wallet_id, "
    + ", ".join(f"sum(m.{c}) AS {c}" for c in SUMMED)
    + ", count(*) FILTER (WHERE m.trade_count > 0) AS active_days"
    + """
    FROM org_wallets ow
    JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id
    WHERE ow.org_id = %(org_id)s AND m.day BETWEEN %(start)s AND %(end)s
    GROUP BY m.wallet_id"""
)
_RANGE_FROM_TOTALS = (
    "SELECT ow.wallet_id, "
    + ", ".join(f"e.{c} - coalesce(s.{c}, 0) AS {c}" for c in COLUMNS)
    + f"""
    FROM org_wallets ow
    CROSS JOIN LATERAL (
        SELECT {_COLS} FROM wallet_running_totals r
        WHERE r.wallet_id = ow.wallet_id AND r.day <= %(end)s
        ORDER BY r.day DESC LIMIT 1
    ) e
    LEFT JOIN LATERAL (
        SELECT {_COLS} FROM wallet_running_totals r
        WHERE r.wallet_id = ow.wallet_id AND r.day < %(start)s
        ORDER BY r.day DESC LIMIT 1
    ) s ON true
    WHERE ow.org_id = %(org_id)s"""
)


def range_totals_sql(start: date, end: date) -> str:
    """The subquery of the org's wallets' totals over [start, end] (parameters org_id,
    start, end): the cheaper of the two ways for that length."""
    short = (end - start).days + 1 <= SHORT_RANGE_DAYS
    return _RANGE_FROM_DAYS if short else _RANGE_FROM_TOTALS
