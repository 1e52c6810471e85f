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

    range (top 50 by volume)  days (before)  running totals  months  cum months
    366 days                        7,009            760         661       2,556
    90 days ending today            1,990            931       2,009       2,093
    7 days ending today               468            532         202       3,392
    180 days in the middle          3,626            468       2,043         826

(seeded in 239 s; the running totals with their columns in the key's INCLUDE took
2.3 GB, the months 82 MB; the machine was shared with other work, so the figures
are noisy.) The months win only where a range is whole months or very short; a
range cutting months reads up to 60 days of rows per wallet from the edges.
Running totals cost the same for every range (two probes per wallet, the worst
case 931 ms against the months' 2,043 ms), the others grow with the partial months
a range cuts. Short ranges are cheaper summed from the days (`SHORT_RANGE_DAYS`):
they read fewer rows than two probes per wallet. Kept without the INCLUDE (half the
storage, one heap fetch per probe). None of the three reaches 50 ms at 50,000
wallets: each is linear in the org's wallets (about 5 µs a probe here). So
`topWallets` reads storage/day_totals.py's day totals, derived from these (two slices
of one day each); `coinBreakdown`, and `topWallets` for a range ending after the day
totals' `through` or for a wallet whose day totals are stale, still read these;
bench/bench_read_models.py has the figures of every statement.

The same model serves `coinBreakdown`: `wallet_coin_running_totals` per wallet,
coin and day of `wallet_coin_day_metrics`, with `wallet_coins` listing each
wallet's coins (so the org's pairs are found without scanning the totals). Both
are one `Model` below; every statement is generated from it.

Keeping it: a rollup of wallet-days on `day` recomputes the running totals of
those wallets from `day` on (`REFRESH`, in the same transaction,
under the same per-wallet locks). For today that is one row per wallet. A late
fill on an old day rewrites that wallet's later rows: at most one per later day
with activity (366 for a year), only for the wallets the rollup rebuilt. The
rows are a pure function of `wallet_day_metrics`, so recomputing them (what
`hl-analytics rebuild` does once after its days, `refresh_running_totals`) gives
the same rows as the rollups did, in any order of arrival.

Adding a summed column (e.g. a new per-wallet-day metric such as funding): add it
to `SUMMED` below (the `wallet_day_metrics` column of the same name), and in a new
migration `ALTER TABLE wallet_running_totals ADD COLUMN <name> numeric NOT NULL
DEFAULT 0` followed by the running sums of the existing rows (the window sums of
migration 0014's INSERT, as an UPDATE ... FROM), or tell operators to run
`hl-analytics rebuild`. Every statement here is generated from `SUMMED`, so the
range totals (`range_totals_sql`) have the column at once; to rank by it, name it
in storage/dashboard.py's ORDERS (and select it in its RANKED; migration: a column and
an index in `org_wallet_ranks`, storage/ranks.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    "funding_usd",
    "deposits_usd",
    "withdrawals_usd",
)
# The same for the per-coin split (`wallet_coin_day_metrics`).
COIN_SUMMED = ("trade_count", "volume_usd", "fees_usd", "realized_pnl_usd", "unpriced_fills")


class State:
    """A dense read model's `read_model_state` row (migration 0018): how far the model is
    kept (`through`; None: not built). Writers keeping the model hold it FOR SHARE; one
    moving it holds it FOR UPDATE, so it waits for them. `model` is never user text."""

    def __init__(self, model: str) -> None:
        where = f"FROM read_model_state WHERE model = '{model}'"
        self.select = f"SELECT through {where}"
        self._share = f"SELECT through {where} FOR SHARE"
        self._lock = f"SELECT through {where} FOR UPDATE"
        self._set = f"UPDATE read_model_state SET through = %(through)s WHERE model = '{model}'"

    def share(self, conn: psycopg.Connection) -> date | None:
        """`through`, held FOR SHARE until the caller's transaction ends."""
        row = conn.execute(self._share).fetchone()
        return row[0] if row else None

    def lock(self, conn: psycopg.Connection) -> date | None:
        """`through`, held FOR UPDATE until the caller's transaction ends."""
        row = conn.execute(self._lock).fetchone()
        return row[0] if row else None

    def advance(self, conn: psycopg.Connection, today: date) -> tuple[bool, date | None]:
        """Moves `through` to `today` unless it is there already (held FOR UPDATE until the
        caller's transaction ends); returns whether it moved, and from where."""
        row = conn.execute(self._lock).fetchone()
        if row is None:  # the migration's row: only a hand-edited database lacks it
            return False, None
        through: date | None = row[0]
        if through is not None and through >= today:
            return False, through
        conn.execute(self._set, {"through": today})
        return True, through


# Ranges of at most this many days are summed from the days (see above).
SHORT_RANGE_DAYS = 14


@dataclass(frozen=True)
class Model:
    """Running totals of a per-wallet-day table: `table` keeps, per wallet (and `key`
    column) and day of `source`, the `summed` columns summed up to that day and the
    `counted` days (name: condition on a source row) up to it."""

    table: str
    source: str
    key: tuple[str, ...]
    summed: tuple[str, ...]
    counted: tuple[tuple[str, str], ...]
    # Where the (wallet, key) pairs an org has are listed: a statement inserting those
    # of source rows `m` (None: the pairs are the org's wallets).
    pairs: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.summed, *(name for name, _ in self.counted))

    @property
    def ids(self) -> tuple[str, ...]:
        return ("wallet_id", *self.key)

    def same(self, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{c} = {b}.{c}" for c in self.ids)

    def running(self, source: str) -> str:
        sums = [f"sum({source}.{c}) OVER w AS {c}" for c in self.summed]
        sums += [f"count(*) FILTER (WHERE {cond}) OVER w AS {n}" for n, cond in self.counted]
        return ", ".join(sums)

    def in_range(self, source: str) -> str:
        sums = [f"sum({source}.{c}) AS {c}" for c in self.summed]
        sums += [f"count(*) FILTER (WHERE {cond}) AS {n}" for n, cond in self.counted]
        return ", ".join(sums)


WALLETS = Model(
    table="wallet_running_totals",
    source="wallet_day_metrics",
    key=(),
    summed=SUMMED,
    counted=(("active_days", "m.trade_count > 0"),),
)
COINS = Model(
    table="wallet_coin_running_totals",
    source="wallet_coin_day_metrics",
    key=("coin",),
    summed=COIN_SUMMED,
    counted=(("days", "true"),),
    pairs="""INSERT INTO wallet_coins (wallet_id, coin, market)
        SELECT DISTINCT m.wallet_id, m.coin, m.market FROM fresh_rows m
        ON CONFLICT (wallet_id, coin) DO NOTHING""",
)
MODELS = (WALLETS, COINS)
COLUMNS = WALLETS.columns

# The running totals of the wallets (all: no filter) from `day` on, recomputed from
# their source rows: the last total before `day` plus the running sums from `day`.
# Rows of days that lost their source row go; rows already right are not rewritten.
_REFRESH = """
/* rebuild: INSERT INTO {table} */
WITH fresh_rows AS (
    SELECT * FROM {source} m WHERE m.day >= %(day)s {m_filter}
),
fresh AS (
    SELECT {ids_m}, m.day, {running}
    FROM fresh_rows m
    WINDOW w AS (PARTITION BY {ids_m} ORDER BY m.day)
),
-- The last total before `day`, once per pair (not per fresh row: a rebuild from the
-- first day has one fresh row per pair and day).
base AS (
    SELECT {ids_p}, b.* FROM (SELECT DISTINCT {ids_m} FROM fresh_rows m) p
    CROSS JOIN LATERAL (
        SELECT {cols} FROM {table} r
        WHERE {same_rp} AND r.day < %(day)s
        ORDER BY r.day DESC LIMIT 1
    ) b
),
totals AS (
    SELECT {ids_f}, f.day, {base_plus}
    FROM fresh f
    LEFT JOIN base b ON {same_bf}
),
{pairs}
gone AS (
    DELETE FROM {table} r
    WHERE r.day >= %(day)s {r_filter}
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE {same_rf} AND f.day = r.day)
)
INSERT INTO {table} AS r ({ids}, day, {cols})
SELECT {ids}, day, {cols} FROM totals
ON CONFLICT ({ids}, day) DO UPDATE SET
    {update}
WHERE {differs}
"""


def _refresh(model: Model, wallet_filter: bool) -> str:
    cols = model.columns
    return _REFRESH.format(
        table=model.table,
        source=model.source,
        ids=", ".join(model.ids),
        ids_m=", ".join(f"m.{c}" for c in model.ids),
        ids_f=", ".join(f"f.{c}" for c in model.ids),
        same_rf=model.same("r", "f"),
        same_rp=model.same("r", "p"),
        same_bf=model.same("b", "f"),
        ids_p=", ".join(f"p.{c}" for c in model.ids),
        running=model.running("m"),
        base_plus=", ".join(f"coalesce(b.{c}, 0) + f.{c} AS {c}" for c in cols),
        pairs=f"pairs AS ({model.pairs})," if model.pairs else "",
        cols=", ".join(cols),
        update=",\n    ".join(f"{c} = EXCLUDED.{c}" for c in cols),
        differs=" OR ".join(f"r.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in cols),
        m_filter="AND m.wallet_id = ANY(%(wallet_ids)s)" if wallet_filter else "",
        r_filter="AND r.wallet_id = ANY(%(wallet_ids)s)" if wallet_filter else "",
    )


# Two statements per model, not a NULL test on a parameter, so each has its own plan.
REFRESH = {model.table: _refresh(model, True) for model in MODELS}
REFRESH_ALL = {model.table: _refresh(model, False) for model in MODELS}


def refresh_running_totals(
    conn: psycopg.Connection, wallet_ids: Sequence[int] | None, day: date
) -> int:
    """Recomputes the wallets' (None: every wallet's) running totals from `day` on, in the
    caller's transaction, which holds the locks of those wallets' rebuilds; returns the
    rows written. (storage.day_totals.refresh_read_models does this and the day totals.)"""
    written = 0
    for model in MODELS:
        if wallet_ids is None:
            written += conn.execute(REFRESH_ALL[model.table], {"day": day}).rowcount
        else:
            params = {"day": day, "wallet_ids": list(wallet_ids)}
            written += conn.execute(REFRESH[model.table], params).rowcount
    return written


def is_short(start: date, end: date) -> bool:
    """Whether [start, end] is summed from the days rather than two running totals."""
    return (end - start).days + 1 <= SHORT_RANGE_DAYS


# The org's (wallet, key) pairs: what a range total is computed for. `p` has the ids.
_PAIRS = {
    WALLETS.table: "SELECT ow.wallet_id, ow.address FROM org_wallets ow {where}",
    COINS.table: """SELECT ow.wallet_id, wc.coin, wc.market FROM org_wallets ow
        JOIN wallet_coins wc ON wc.wallet_id = ow.wallet_id {where}""",
}
# Only the org's wallets; with `address`, only the wallet at that address.
_ORG_WHERE = "WHERE ow.org_id = %(org_id)s"
_ADDRESS_WHERE = """WHERE ow.org_id = %(org_id)s
        AND ow.wallet_id = (SELECT id FROM wallets WHERE address = %(address)s)"""


def range_totals_sql(
    model: Model, start: date, end: date, *, by_address: bool = False, wallets_also: str = ""
) -> str:
    """A subquery of the org's pairs' totals over [start, end] (parameters org_id, start,
    end and, `by_address`, address): its ids, the model's columns and, for coins, market
    (for wallets, address).
    Short ranges are summed from the days; longer ones are two running totals per pair.
    A pair without a row in the range has no row. `wallets_also`: more conditions on the
    org's wallets `ow` (never user text)."""
    where = (_ADDRESS_WHERE if by_address else _ORG_WHERE) + " " + wallets_also
    pairs = _PAIRS[model.table].format(where=where)
    extra = ", p.market" if model.key else ", p.address"
    ids = ", ".join(f"p.{c}" for c in model.ids)
    if is_short(start, end):
        return f"""
    SELECT {ids}{extra}, {model.in_range("m")}
    FROM ({pairs}) p
    JOIN {model.source} m ON {model.same("m", "p")}
    WHERE m.day BETWEEN %(start)s AND %(end)s
    GROUP BY {ids}{extra}"""
    cols = ", ".join(model.columns)
    diffs = ", ".join(f"e.{c} - coalesce(s.{c}, 0) AS {c}" for c in model.columns)
    # A pair whose last row on or before the end is also before the start has no row
    # in the range.
    return f"""
    SELECT {ids}{extra}, {diffs}
    FROM ({pairs}) p
    CROSS JOIN LATERAL (
        SELECT r.day, {cols} FROM {model.table} r
        WHERE {model.same("r", "p")} AND r.day <= %(end)s
        ORDER BY r.day DESC LIMIT 1
    ) e
    LEFT JOIN LATERAL (
        SELECT r.day, {cols} FROM {model.table} r
        WHERE {model.same("r", "p")} AND r.day < %(start)s
        ORDER BY r.day DESC LIMIT 1
    ) s ON true
    WHERE s.day IS NULL OR s.day < e.day"""
