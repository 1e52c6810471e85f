"""Read queries of the metric tables for the API, one round trip per GraphQL field.

The work happens in SQL: day series are zero-filled with `generate_series`,
rankings are `ORDER BY … LIMIT`, and every statement is filtered by the org id
it is given (the caller's, from a verified token) so no query can reach another
organisation's rows. The pipeline's rebuild statements live in `rollups.py`.
A wallet's last sync counts for an org only from when the org began tracking it
(`org_wallets.created_at`): another org's earlier syncs say nothing about its data.
The connections come inside the storage error boundary (`storage.db`), which turns
a lost connection into `DatabaseUnavailable` (the API answers 503), so the API
never handles psycopg's exceptions.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from hl_core.settings import DEFAULT_USD_TOKENS
from storage import day_totals, org_coins, ranks, read_models
from storage.fills import day_bounds_ms
from storage.markets import dex_of
from storage.orgs import SELECT_PROFILE, Profile
from storage.rollups import PRICE_FILL, pricing_params

RANGE_DAYS = {"D7": 7, "D30": 30, "D90": 90}
# The longest span a `DateRange` may cover, in days.
MAX_RANGE_DAYS = 366
# What each ordering ranks by: range totals (storage/read_models.py's SUMMED columns)
# of the row alias `{t}` (`order_key`).
ORDERS = {
    "VOLUME": "{t}.total_volume_usd",
    "TRADES": "{t}.trade_count",
    "PNL": "{t}.realized_pnl_usd",
    "FEES": "{t}.fees_usd",
    "NET_PNL": "({t}.realized_pnl_usd - {t}.fees_usd + {t}.funding_usd)",
    "FUNDING": "{t}.funding_usd",
}


def order_key(order: str, alias: str) -> str:
    """The ordering's expression over the totals of row alias `alias`."""
    return ORDERS[order].format(t=alias)


PING = "SELECT 1"

_DAY_VALUES = (
    "dau",
    "trade_count",
    "spot_volume_usd",
    "perp_volume_usd",
    "outcome_volume_usd",
    "total_volume_usd",
    "fees_usd",
    "realized_pnl_usd",
)


def _day_columns(alias: str) -> str:
    """The DayMetrics columns of one global_day_metrics row, zeros when it is absent."""
    values = [f"coalesce({alias}.{name}, 0)" for name in _DAY_VALUES]
    # 2 decimals as the contract says, whatever scale the rollup stored.
    values.append(f"round(coalesce({alias}.avg_volume_per_user, 0), 2)")
    # After the original columns, so the funding column is an addition to every reader.
    values.append(f"coalesce({alias}.funding_usd, 0)")
    values.append(f"coalesce({alias}.deposits_usd, 0)")
    values.append(f"coalesce({alias}.withdrawals_usd, 0)")
    return ", ".join(values)


SELECT_GLOBAL_SERIES = f"""
SELECT d.day::date, {_day_columns("g")}
FROM generate_series(%(start)s::date, %(end)s::date, interval '1 day') AS d(day)
LEFT JOIN global_day_metrics g ON g.org_id = %(org_id)s AND g.day = d.day::date
ORDER BY d.day
"""

SELECT_SUMMARY = f"""
WITH latest AS (
    SELECT max(day) AS day FROM global_day_metrics WHERE org_id = %(org_id)s
)
SELECT
    l.day,
    {_day_columns("cur")},
    {_day_columns("prev")},
    (SELECT count(*) FROM org_wallets WHERE org_id = %(org_id)s),
    (SELECT c.last_success_at
       FROM hl_ingest_cursor c JOIN org_wallets ow ON ow.wallet_id = c.wallet_id
      WHERE ow.org_id = %(org_id)s AND c.last_success_at >= ow.created_at
      ORDER BY c.last_success_at DESC LIMIT 1)
FROM latest l
LEFT JOIN global_day_metrics cur ON cur.org_id = %(org_id)s AND cur.day = l.day
LEFT JOIN global_day_metrics prev ON prev.org_id = %(org_id)s AND prev.day = l.day - 1
"""

# The org's wallets ranked over a range, from their range totals: the standing ranks'
# rows for a range they keep (storage/ranks.py: the first entries of one index); else
# two day-total slices when the day totals reach the range's end; else (storage/
# read_models.py) summed from the days for a short range, two running totals per
# wallet otherwise. The totals carry the address (org_wallets keeps it), so the top N
# in the whole order (the key, then the address) is a bounded sort of one pass, and
# only those N rows are numbered.
_TOP_WALLETS = """
SELECT row_number() OVER (ORDER BY {key} DESC, t.address), t.address, {columns}
FROM (
    SELECT * FROM ({totals}) t
    -- Listed for its trades; system fills' fees and PnL still count in its sums.
    WHERE t.trade_count > 0
    ORDER BY {key} DESC, t.address
    LIMIT %(limit)s
) t
ORDER BY {key} DESC, t.address
"""


def top_wallets_sql(
    order: str,
    start: date,
    end: date,
    through: date | None = None,
    ranked: date | None = None,
) -> str:
    """The ranking statement of `order` for the range; the key is never user text.
    `through`: how far the day totals are kept, `ranked`: where the standing ranks'
    spans end (None: not built)."""
    span = ranks.span_of(start, end, ranked)
    if span is not None:
        return ranks.top_sql(order_key(order, "k"), span, RANKED)
    if through is not None and end <= through:
        totals = day_totals.totals_sql(start, end)
    else:
        totals = read_models.range_totals_sql(read_models.WALLETS, start, end)
    columns = ", ".join(f"t.{c}" for c in RANKED)
    return _TOP_WALLETS.format(key=order_key(order, "t"), totals=totals, columns=columns)


# How far each dense read model is kept (model → through).
SELECT_READ_MODELS = "SELECT model, through FROM read_model_state"


# The series and its totals (window sums over the series) in one statement; no
# row at all when the org does not track the address.
SELECT_WALLET_SERIES = """
WITH tracked AS (
    SELECT w.id, w.address, ow.created_at AS since
    FROM org_wallets ow JOIN wallets w ON w.id = ow.wallet_id
    WHERE ow.org_id = %(org_id)s AND w.address = %(address)s
),
series AS (
    SELECT t.id, t.address, t.since, d.day::date AS day,
           coalesce(m.trade_count, 0) AS trade_count,
           coalesce(m.spot_volume_usd, 0) AS spot,
           coalesce(m.perp_volume_usd, 0) AS perp,
           coalesce(m.outcome_volume_usd, 0) AS outcome,
           coalesce(m.total_volume_usd, 0) AS total,
           coalesce(m.fees_usd, 0) AS fees,
           coalesce(m.realized_pnl_usd, 0) AS pnl,
           coalesce(m.unpriced_fills, 0) AS unpriced,
           coalesce(m.funding_usd, 0) AS funding,
           coalesce(m.deposits_usd, 0) AS deposits,
           coalesce(m.withdrawals_usd, 0) AS withdrawals
    FROM tracked t
    CROSS JOIN generate_series(%(start)s::date, %(end)s::date, interval '1 day') AS d(day)
    LEFT JOIN wallet_day_metrics m ON m.wallet_id = t.id AND m.day = d.day::date
)
SELECT s.address, s.day, s.trade_count, s.spot, s.perp, s.outcome, s.total, s.fees, s.pnl,
       sum(s.trade_count) OVER (), sum(s.spot) OVER (), sum(s.perp) OVER (),
       sum(s.outcome) OVER (), sum(s.total) OVER (), sum(s.fees) OVER (), sum(s.pnl) OVER (),
       count(*) FILTER (WHERE s.trade_count > 0) OVER (),
       c.last_success_at, sum(s.unpriced) OVER (),
       (SELECT h.complete_from FROM hl_ingest_cursor h WHERE h.wallet_id = s.id),
       s.funding, sum(s.funding) OVER (), s.deposits, sum(s.deposits) OVER (),
       s.withdrawals, sum(s.withdrawals) OVER ()
FROM series s
LEFT JOIN hl_ingest_cursor c ON c.wallet_id = s.id AND c.last_success_at >= s.since
ORDER BY s.day
"""


@dataclass(frozen=True, slots=True)
class DayMetrics:
    day: date
    dau: int
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    avg_volume_per_user: Decimal
    funding_usd: Decimal = Decimal(0)
    deposits_usd: Decimal = Decimal(0)
    withdrawals_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Summary:
    day: date | None
    latest: DayMetrics | None
    previous: DayMetrics | None
    tracked_wallets: int
    last_synced_at: datetime | None


@dataclass(frozen=True, slots=True)
class WalletRank:
    rank: int
    address: str
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    active_days: int
    funding_usd: Decimal = Decimal(0)
    deposits_usd: Decimal = Decimal(0)
    withdrawals_usd: Decimal = Decimal(0)


# A ranked wallet's columns after its rank and address, in WalletRank's order: what a
# ranking statement selects.
RANKED = tuple(f.name for f in fields(WalletRank))[2:]


@dataclass(frozen=True, slots=True)
class SeriesDay:
    """One day of a wallet's series as the API shows it (zeros on a day without fills)."""

    day: date
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    funding_usd: Decimal = Decimal(0)
    deposits_usd: Decimal = Decimal(0)
    withdrawals_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class WalletTotals:
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    active_days: int
    funding_usd: Decimal = Decimal(0)
    deposits_usd: Decimal = Decimal(0)
    withdrawals_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class WalletSeries:
    address: str
    days: list[SeriesDay]
    totals: WalletTotals
    last_synced_at: datetime | None
    # Fills over the series' days with an amount that has no USD value.
    unpriced_fills: int = 0
    # Every fill of the wallet from this UTC day on is stored (None: not known).
    complete_from: date | None = None


def range_bounds(range_name: str, today: date) -> tuple[date, date]:
    """First and last UTC day of a named range ending today (D7, D30, D90)."""
    return today - timedelta(days=RANGE_DAYS[range_name] - 1), today


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(PING)


async def get_profile(conn: psycopg.AsyncConnection[Any], user_id: str) -> Profile | None:
    """The async twin of `orgs.get_profile`, with its statement."""
    cur = await conn.execute(SELECT_PROFILE, (user_id,))
    row = await cur.fetchone()
    return Profile(*row) if row else None


async def global_series(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, start: date, end: date
) -> list[DayMetrics]:
    """The org's days from `start` to `end` (inclusive), zeros where there is no row."""
    cur = await conn.execute(SELECT_GLOBAL_SERIES, {"org_id": org_id, "start": start, "end": end})
    return [DayMetrics(*row) for row in await cur.fetchall()]


async def summary(conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID) -> Summary:
    cur = await conn.execute(SELECT_SUMMARY, {"org_id": org_id})
    row = await cur.fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns a row
    width = len(_DAY_VALUES) + 4  # and avg_volume_per_user, funding, deposits, withdrawals
    day, tracked, synced = row[0], row[1 + 2 * width], row[2 + 2 * width]
    if day is None:
        return Summary(None, None, None, tracked, synced)
    latest = DayMetrics(day, *row[1 : 1 + width])
    previous = DayMetrics(day - timedelta(days=1), *row[1 + width : 1 + 2 * width])
    return Summary(day, latest, previous, tracked, synced)


async def top_wallets(
    conn: psycopg.AsyncConnection[Any],
    org_id: uuid.UUID,
    start: date,
    end: date,
    limit: int,
    order: str,
) -> list[WalletRank]:
    params = {"org_id": org_id, "start": start, "end": end, "limit": limit}
    cur = await conn.execute(SELECT_READ_MODELS)
    kept = dict(await cur.fetchall())
    sql = top_wallets_sql(order, start, end, kept.get(day_totals.DAY_TOTALS), kept.get(ranks.RANKS))
    cur = await conn.execute(sql, params)
    return [WalletRank(*row) for row in await cur.fetchall()]


async def wallet_series(
    conn: psycopg.AsyncConnection[Any],
    org_id: uuid.UUID,
    address: str,
    start: date,
    end: date,
) -> WalletSeries | None:
    """The wallet's days and totals, or None when the org does not track it."""
    params = {"org_id": org_id, "address": address, "start": start, "end": end}
    cur = await conn.execute(SELECT_WALLET_SERIES, params)
    rows = await cur.fetchall()
    if not rows:
        return None
    first = rows[0]
    return WalletSeries(
        address=first[0],
        days=[SeriesDay(*[*row[1:9], row[20], row[22], row[24]]) for row in rows],
        totals=WalletTotals(*[*first[9:17], first[21], first[23], first[25]]),
        last_synced_at=first[17],
        unpriced_fills=int(first[18]),
        complete_from=first[19],
    )


# -- the org's tracked wallets ---------------------------------------------------------

# The org's wallets matching the search (an address prefix, or a label substring,
# case-insensitive), after the keyset position, in address order; the last column is
# how many match the search in all. `unpriced` is all-time: the wallet's last running
# total. The page is a range of the (org_id, address) index (migration 0019), not a
# sort of all of the org's wallets.
_MATCHES = """{ow}.org_id = %(org_id)s
      AND (%(search)s::text IS NULL
           OR left({ow}.address, length(%(search)s::text)) = lower(%(search)s::text)
           OR strpos(lower({ow}.label), lower(%(search)s::text)) > 0)"""
SELECT_TRACKED_WALLETS = f"""
SELECT m.address, m.label, m.created_at, c.last_success_at,
       to_timestamp(c.last_fill_ms / 1000.0),
       CASE WHEN c.last_success_at IS NULL THEN 'PENDING'
            WHEN c.last_error_at > c.last_success_at THEN 'FAILING'
            WHEN c.history_truncated THEN 'TRUNCATED'
            ELSE 'OK' END,
       c.last_error,
       coalesce((SELECT r.unpriced_fills FROM wallet_running_totals r
                 WHERE r.wallet_id = m.wallet_id ORDER BY r.day DESC LIMIT 1), 0)::bigint,
       c.complete_from,
       (SELECT count(*) FROM org_wallets o
         WHERE {_MATCHES.format(ow="o")}
           AND (%(address)s::text IS NULL OR o.address = %(address)s::text))
FROM (
    SELECT ow.wallet_id, ow.address, ow.label, ow.created_at
    FROM org_wallets ow
    WHERE {_MATCHES.format(ow="ow")}
      AND (%(address)s::text IS NULL OR ow.address = %(address)s::text)
      AND (%(after)s::text IS NULL OR ow.address > %(after)s::text)
    ORDER BY ow.address
    LIMIT %(limit)s
) m
LEFT JOIN hl_ingest_cursor c ON c.wallet_id = m.wallet_id
ORDER BY m.address
"""
COUNT_TRACKED_WALLETS = f"""
SELECT count(*) FROM org_wallets ow WHERE {_MATCHES.format(ow="ow")}
"""
SET_LABEL = """
UPDATE org_wallets ow SET label = %(label)s
FROM wallets w
WHERE ow.wallet_id = w.id AND ow.org_id = %(org_id)s AND w.address = %(address)s
RETURNING w.address
"""


@dataclass(frozen=True, slots=True)
class TrackedWallet:
    address: str
    label: str | None
    tracked_at: datetime
    last_synced_at: datetime | None
    last_fill_at: datetime | None
    # PENDING (never ingested successfully), FAILING (last error newer than last
    # success), TRUNCATED (history past what the sources reach), else OK.
    sync_state: str
    last_error: str | None
    unpriced_fills: int
    # Every fill of the wallet from this UTC day on is stored (None: not known).
    complete_from: date | None = None


@dataclass(frozen=True, slots=True)
class TrackedWalletPage:
    wallets: list[TrackedWallet]
    has_next_page: bool
    total_count: int


async def tracked_wallets(
    conn: psycopg.AsyncConnection[Any],
    org_id: uuid.UUID,
    first: int,
    after: str | None = None,
    search: str | None = None,
) -> TrackedWalletPage:
    """Up to `first` of the org's wallets after address `after`, ordered by address."""
    params = {
        "org_id": org_id,
        "address": None,
        "search": search,
        "after": after,
        "limit": first + 1,
    }
    cur = await conn.execute(SELECT_TRACKED_WALLETS, params)
    rows = await cur.fetchall()
    if rows:
        total = int(rows[0][-1])
    else:
        cur = await conn.execute(COUNT_TRACKED_WALLETS, {"org_id": org_id, "search": search})
        count = await cur.fetchone()
        total = int(count[0]) if count else 0
    wallets = [TrackedWallet(*row[:-1]) for row in rows[:first]]
    return TrackedWalletPage(wallets, len(rows) > first, total)


async def tracked_wallet(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, address: str
) -> TrackedWallet | None:
    params = {"org_id": org_id, "address": address, "search": None, "after": None, "limit": 1}
    cur = await conn.execute(SELECT_TRACKED_WALLETS, params)
    row = await cur.fetchone()
    return TrackedWallet(*row[:-1]) if row else None


async def set_label(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, address: str, label: str | None
) -> bool:
    """Sets (or clears, with None) the org's label of a wallet, committed; False when it
    does not track the wallet. The API's connections are not in autocommit and a
    request's connection is rolled back when the request ends, so the write commits
    here (with whatever the request read before it, which writes nothing)."""
    cur = await conn.execute(SET_LABEL, {"org_id": org_id, "address": address, "label": label})
    found = await cur.fetchone() is not None
    await conn.commit()
    return found


# -- a wallet's fills ------------------------------------------------------------------

# One tracked wallet's fills, newest first, keyset-paginated on the fill's identity
# (time, tid, oid, coin), priced by the rollups' own fragment (NULL: no USD value).
# No row when the org does not track the wallet. The wallet id comes from a scalar
# subquery, not a join: compared with one value, the fills' key (wallet_id, time, …)
# is read backwards from the cursor and the LIMIT stops it, where a join sorted every
# fill older than the cursor on each page (a whole history became quadratic).
SELECT_FILLS = f"""
SELECT f.time, f.coin, coalesce(mk.display_name, f.coin), f.market, f.dex, f.side, f.dir,
       f.px, f.sz, p.volume_usd, p.fee_usd, p.pnl_usd, f.tid, f.oid, f.hash,
       (f.liquidated_user IS NOT NULL OR f.liquidation_mark_px IS NOT NULL
        OR f.liquidation_method IS NOT NULL),
       f.fee, f.fee_token
FROM hl_fills_raw f
{PRICE_FILL}
WHERE f.wallet_id = (SELECT ow.wallet_id FROM org_wallets ow JOIN wallets w ON w.id = ow.wallet_id
                     WHERE ow.org_id = %(org_id)s AND w.address = %(address)s)
  AND f.time >= %(lo)s AND f.time < %(hi)s
  AND (%(coin)s::text IS NULL OR f.coin = %(coin)s::text)
  AND (%(after_time)s::bigint IS NULL
       OR (f.time, f.tid, f.oid, f.coin)
          < (%(after_time)s::bigint, %(after_tid)s::bigint, %(after_oid)s::bigint,
             %(after_coin)s::text))
ORDER BY f.time DESC, f.tid DESC, f.oid DESC, f.coin DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class FillRow:
    time_ms: int
    coin: str
    display_name: str
    market: str
    dex: str | None
    side: str
    dir: str
    px: Decimal
    sz: Decimal
    volume_usd: Decimal | None
    fee_usd: Decimal | None
    closed_pnl_usd: Decimal | None
    tid: int
    oid: int
    hash: str
    liquidation: bool
    # As Hyperliquid reported it (the CSV export lists it beside its USD value).
    fee: Decimal
    fee_token: str

    @property
    def key(self) -> list[Any]:
        """The fill's keyset position: (time, tid, oid, coin)."""
        return [self.time_ms, self.tid, self.oid, self.coin]


@dataclass(frozen=True, slots=True)
class FillPage:
    fills: list[FillRow]
    has_next_page: bool


async def wallet_fills(
    conn: psycopg.AsyncConnection[Any],
    org_id: uuid.UUID,
    address: str,
    start: date,
    end: date,
    first: int,
    *,
    after: tuple[int, int, int, str] | None = None,
    coin: str | None = None,
    usd_tokens: Sequence[str] = DEFAULT_USD_TOKENS,
) -> FillPage:
    """Up to `first` fills of a wallet the org tracks on days start..end, newest first,
    after the keyset position `after` (time, tid, oid, coin)."""
    lo, _ = day_bounds_ms(start)
    _, hi = day_bounds_ms(end)
    after_time, after_tid, after_oid, after_coin = after or (None, None, None, None)
    params = {
        "org_id": org_id,
        "address": address,
        "lo": lo,
        "hi": hi,
        "coin": coin,
        "after_time": after_time,
        "after_tid": after_tid,
        "after_oid": after_oid,
        "after_coin": after_coin,
        "limit": first + 1,
        **pricing_params(usd_tokens),
    }
    cur = await conn.execute(SELECT_FILLS, params)
    rows = await cur.fetchall()
    return FillPage([FillRow(*row) for row in rows[:first]], len(rows) > first)


# -- per coin --------------------------------------------------------------------------

# One of the org's wallets' coins over [start, end], from its per-coin range totals
# (storage/read_models.py): by volume descending, ties by coin; `wallets` is 1 when it
# traded the coin in the range. (The whole org's: storage/org_coins.py.)
_WALLET_COINS = """
SELECT t.coin, coalesce(min(mk.display_name), t.coin), t.market,
       sum(t.trade_count)::bigint, sum(t.volume_usd), sum(t.fees_usd),
       sum(t.realized_pnl_usd), count(*) FILTER (WHERE t.trade_count > 0)
FROM ({totals}) t
LEFT JOIN hl_markets mk ON mk.coin = t.coin
GROUP BY t.coin, t.market
ORDER BY sum(t.volume_usd) DESC, t.coin
"""


def wallet_coins_sql(start: date, end: date) -> str:
    totals = read_models.range_totals_sql(read_models.COINS, start, end, by_address=True)
    return _WALLET_COINS.format(totals=totals)


@dataclass(frozen=True, slots=True)
class CoinMetrics:
    coin: str
    display_name: str
    market: str
    dex: str | None
    trade_count: int
    volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    wallets: int


async def coin_breakdown(
    conn: psycopg.AsyncConnection[Any],
    org_id: uuid.UUID,
    start: date,
    end: date,
    address: str | None = None,
) -> list[CoinMetrics]:
    """Per coin over start..end (inclusive): the org's wallets (from the org coin-days,
    storage/org_coins.py), or the one at `address` (from its running totals)."""
    if address is None:
        rows = await org_coins.breakdown(conn, org_id, start, end)
    else:
        params = {"org_id": org_id, "start": start, "end": end, "address": address}
        cur = await conn.execute(wallet_coins_sql(start, end), params)
        rows = await cur.fetchall()
    return [
        CoinMetrics(coin, name, market, dex_of(coin), int(trades), volume, fees, pnl, wallets)
        for coin, name, market, trades, volume, fees, pnl, wallets in rows
    ]


# -- account snapshots (issue 16): additions, read from storage.positions' tables -------

# The tracked wallet's latest snapshot totals; no row before its first snapshot (or when
# the org does not track it).
SELECT_WALLET_ACCOUNT = """
SELECT a.account_value_usd, a.unrealized_pnl_usd, a.taken_ms
FROM org_wallets ow
JOIN wallets w ON w.id = ow.wallet_id
JOIN LATERAL (
    SELECT * FROM wallet_account_days d WHERE d.wallet_id = w.id ORDER BY d.day DESC LIMIT 1
) a ON true
WHERE ow.org_id = %(org_id)s AND w.address = %(address)s
"""
SELECT_WALLET_POSITIONS = """
SELECT p.coin, p.dex, p.size, p.entry_px, p.position_value, p.unrealized_pnl, p.leverage_type,
       p.leverage, p.liquidation_px, p.margin_used, p.funding_since_open, p.usd_priced
FROM org_wallets ow
JOIN wallets w ON w.id = ow.wallet_id
JOIN wallet_positions p ON p.wallet_id = w.id
WHERE ow.org_id = %(org_id)s AND w.address = %(address)s
ORDER BY p.coin
"""
SELECT_WALLET_BALANCES = """
SELECT b.coin, b.total, b.hold, b.usd_priced
FROM org_wallets ow
JOIN wallets w ON w.id = ow.wallet_id
JOIN wallet_balances b ON b.wallet_id = w.id
WHERE ow.org_id = %(org_id)s AND w.address = %(address)s
ORDER BY b.coin
"""
# Each day of the range with its last snapshot's account value, NULL where none.
SELECT_ACCOUNT_SERIES = """
SELECT d.day::date, a.account_value_usd
FROM org_wallets ow
JOIN wallets w ON w.id = ow.wallet_id
CROSS JOIN generate_series(%(start)s::date, %(end)s::date, interval '1 day') AS d(day)
LEFT JOIN wallet_account_days a ON a.wallet_id = w.id AND a.day = d.day::date
WHERE ow.org_id = %(org_id)s AND w.address = %(address)s
ORDER BY d.day
"""
# Sums over the org's wallets' latest snapshots; NULL sums when none has one.
SELECT_ORG_ACCOUNT = """
WITH latest AS (
    SELECT DISTINCT ON (a.wallet_id) a.account_value_usd, a.unrealized_pnl_usd,
           a.open_positions, a.taken_ms
    FROM org_wallets ow JOIN wallet_account_days a ON a.wallet_id = ow.wallet_id
    WHERE ow.org_id = %(org_id)s
    ORDER BY a.wallet_id, a.day DESC
)
SELECT sum(account_value_usd), sum(unrealized_pnl_usd),
       coalesce(sum(open_positions), 0)::integer, min(taken_ms)
FROM latest
"""


@dataclass(frozen=True, slots=True)
class Account:
    """Latest-snapshot totals (of a wallet, or summed over an org's wallets)."""

    account_value_usd: Decimal | None
    unrealized_pnl_usd: Decimal | None
    as_of: datetime | None
    open_positions: int = 0


@dataclass(frozen=True, slots=True)
class PositionRow:
    coin: str
    dex: str
    size: Decimal
    entry_px: Decimal | None
    position_value: Decimal
    unrealized_pnl: Decimal
    leverage_type: str
    leverage: Decimal
    liquidation_px: Decimal | None
    margin_used: Decimal
    funding_since_open: Decimal
    usd_priced: bool


def _as_of(taken_ms: int | None) -> datetime | None:
    return None if taken_ms is None else datetime.fromtimestamp(taken_ms / 1000, UTC)


async def wallet_account(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, address: str
) -> Account:
    params = {"org_id": org_id, "address": address}
    cur = await conn.execute(SELECT_WALLET_ACCOUNT, params)
    row = await cur.fetchone()
    if row is None:
        return Account(None, None, None)
    return Account(row[0], row[1], _as_of(row[2]))


async def wallet_positions(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, address: str
) -> list[PositionRow]:
    cur = await conn.execute(SELECT_WALLET_POSITIONS, {"org_id": org_id, "address": address})
    return [PositionRow(*row) for row in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class BalanceRow:
    coin: str
    total: Decimal
    hold: Decimal
    usd_priced: bool


async def wallet_balances(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, address: str
) -> list[BalanceRow]:
    cur = await conn.execute(SELECT_WALLET_BALANCES, {"org_id": org_id, "address": address})
    return [BalanceRow(*row) for row in await cur.fetchall()]


async def account_series(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, address: str, start: date, end: date
) -> list[tuple[date, Decimal | None]]:
    params = {"org_id": org_id, "address": address, "start": start, "end": end}
    cur = await conn.execute(SELECT_ACCOUNT_SERIES, params)
    return [(row[0], row[1]) for row in await cur.fetchall()]


async def org_account(conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID) -> Account:
    cur = await conn.execute(SELECT_ORG_ACCOUNT, {"org_id": org_id})
    row = await cur.fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns a row
    return Account(row[0], row[1], _as_of(row[3]), int(row[2]))
