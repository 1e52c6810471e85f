"""Derived daily metrics: `wallet_day_metrics` (with its per-coin split,
`wallet_coin_day_metrics`, rebuilt by the same statements) and `global_day_metrics`.

Every rebuild is one set-based statement that recomputes a row from its source
(never an increment), so running it twice, concurrently, or after a crash gives
the same numbers. The domain rules live here and nowhere else:

- a fill belongs to the UTC day of its `time`; the day's range is computed in
  Python (`day_bounds_ms`) so the partition and index on `time` are used;
- market kind follows the coin's spelling (`hl_fills_raw.market`: spot, perp
  or outcome); the quote token comes from metadata (`hl_markets`,
  storage.markets) and is unknown until resolved;
- a USD stablecoin (`usd_tokens`, the setting HYPERLIQUID_USD_TOKENS) counts
  at par; volume = `px × sz` in the quote token, counted when the quote is one;
- fee in USD = `fee` when `fee_token` is a USD stablecoin; `fee × px` when
  `fee_token` is the market's base token (a spot buy pays its fee in what it
  receives) and the quote is a USD stablecoin; 0 when the fee is 0; otherwise
  unpriced. `fee` already includes `builder_fee`, which is never added;
- realized PnL = sum of `closed_pnl`, which is in the quote token: left out
  when that is not a USD stablecoin;
- a fill whose volume or fee has no USD value is counted once in
  `unpriced_fills`; its unpriced amounts are left out, nothing is converted at
  a guessed price;
- system fills (`SYSTEM_DIRS`: dust conversions, vault netting, outcome
  settlements and splits/merges) are not the wallet's trades: not in
  `trade_count`, volumes, DAU or active days; their fees and PnL still count;
- funding = sum of the day's funding payments (`hl_funding.usdc`, signed as
  Hyperliquid reports it: negative = paid), counted at par when the perp's
  collateral (its quote token) is a USD stablecoin, else left out; a day with
  funding and no fill has a row (with no trades: not in DAU or active days);
- deposits and withdrawals = the USDC of the day's ledger updates of those classes
  (storage.ledger's table), at par; such a day has a row too, and an update of
  another class makes none;
- an org-day sums the wallet-days of the wallets the org tracks *now*;
  DAU = those wallets with at least one trade fill that day;
  `avg_volume_per_user` = round(total / DAU, 2), 0 when DAU is 0.

Rows exist only for activity (fills or funding): a wallet-day whose fills are gone, and an
org-day none of whose tracked wallets has a fill, are deleted rather than kept
as zeros. Readers (the API) turn a missing day into zeros. All sums are NUMERIC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg

from hl_core.settings import DEFAULT_USD_TOKENS
from storage import changes, day_totals, org_coins, ranks
from storage.fills import DAY_MS, day_bounds_ms

# Fills Hyperliquid books on a wallet that are not its own trades. From its docs and
# the public SDKs' fill directions: the daily conversion of spot dust to USDC, the
# netting of a vault with its child vaults, and HIP-4 outcome settlements and
# split/merge/negate operations (synthetic fills at accounting prices).
SYSTEM_DIRS = (
    "Spot Dust Conversion",
    "Net Child Vaults",
    "Settlement",
    "Split Outcome",
    "Merge Outcome",
    "Merge Question",
    "Negate Outcome",
)

# The pricing of one fill `f` of hl_fills_raw by the rules of the module docstring, as
# joins to put after `FROM hl_fills_raw f`: `mk` its market (hl_markets), `p.trade`
# whether it is a trade (not a system fill), and `p.volume_usd`, `p.fee_usd` and
# `p.pnl_usd` its amounts in USD, NULL when they have none. Parameters: `usd_tokens`
# and `system_dirs` (`pricing_params`). The rollups below and the API's fill list
# (storage/dashboard.py) use this one fragment.
PRICE_FILL = """
LEFT JOIN hl_markets mk ON mk.coin = f.coin
CROSS JOIN LATERAL (
    SELECT f.dir <> ALL(%(system_dirs)s::text[]) AS trade,
           coalesce(mk.quote_token = ANY(%(usd_tokens)s::text[]), false) AS quote_usd
) q
CROSS JOIN LATERAL (
    SELECT q.trade,
           CASE WHEN q.quote_usd THEN f.px * f.sz END AS volume_usd,
           CASE WHEN f.fee = 0 THEN 0
                WHEN f.fee_token = ANY(%(usd_tokens)s::text[]) THEN f.fee
                WHEN f.fee_token = mk.base_token AND q.quote_usd THEN f.fee * f.px
           END AS fee_usd,
           CASE WHEN q.quote_usd OR f.closed_pnl = 0 THEN f.closed_pnl END AS pnl_usd
) p
"""


def pricing_params(usd_tokens: Sequence[str]) -> dict[str, object]:
    """The parameters PRICE_FILL needs."""
    return {"usd_tokens": list(usd_tokens), "system_dirs": list(SYSTEM_DIRS)}


# One aggregate per wallet and coin over the fills of [lo, hi), in one pass over the
# fills; the wallet aggregate is summed from it, so both are built from the same rows.
_COIN_AGGREGATE = f"""
SELECT f.wallet_id, f.coin, f.market,
       count(*) FILTER (WHERE p.trade)::integer AS trade_count,
       coalesce(sum(p.volume_usd) FILTER (WHERE p.trade), 0) AS volume_usd,
       coalesce(sum(p.fee_usd), 0) AS fees_usd,
       coalesce(sum(p.pnl_usd), 0) AS realized_pnl_usd,
       count(*) FILTER (WHERE p.volume_usd IS NULL OR p.fee_usd IS NULL)::integer
           AS unpriced_fills
FROM hl_fills_raw f
{PRICE_FILL}
WHERE f.time >= %(lo)s AND f.time < %(hi)s {{wallet_filter}}
GROUP BY f.wallet_id, f.coin, f.market
"""
_WALLET_AGGREGATE = """
SELECT wallet_id,
       sum(trade_count)::integer AS trade_count,
       coalesce(sum(volume_usd) FILTER (WHERE market = 'spot'), 0) AS spot_volume_usd,
       coalesce(sum(volume_usd) FILTER (WHERE market = 'perp'), 0) AS perp_volume_usd,
       coalesce(sum(volume_usd) FILTER (WHERE market = 'outcome'), 0) AS outcome_volume_usd,
       sum(fees_usd) AS fees_usd,
       sum(realized_pnl_usd) AS realized_pnl_usd,
       sum(unpriced_fills)::integer AS unpriced_fills
FROM coins
GROUP BY wallet_id
"""
# A day's funding per wallet: payments in a USD stablecoin collateral (the perp's
# quote token, from hl_markets) count at par; others (or not known yet) are left out.
_FUNDING_AGGREGATE = """
SELECT fu.wallet_id,
       coalesce(sum(fu.usdc) FILTER (WHERE mk.quote_token = ANY(%(usd_tokens)s::text[])), 0)
           AS funding_usd
FROM hl_funding fu
LEFT JOIN hl_markets mk ON mk.coin = fu.coin
WHERE fu.time >= %(lo)s AND fu.time < %(hi)s {wallet_filter}
GROUP BY fu.wallet_id
"""
# A day's deposits and withdrawals per wallet (storage.ledger's classes), in USDC,
# counted at par; updates of other classes make no row.
_LEDGER_AGGREGATE = """
SELECT l.wallet_id,
       coalesce(sum(l.usdc) FILTER (WHERE l.class = 'deposit'), 0) AS deposits_usd,
       coalesce(sum(l.usdc) FILTER (WHERE l.class = 'withdrawal'), 0) AS withdrawals_usd
FROM hl_ledger l
WHERE l.time >= %(lo)s AND l.time < %(hi)s AND l.class IN ('deposit', 'withdrawal')
      {wallet_filter}
GROUP BY l.wallet_id
"""
# The wallet-day: its fills' aggregate beside its funding, deposits and withdrawals; a
# day with any of them has a row.
_DAY_AGGREGATE = """
SELECT coalesce(t.wallet_id, fu.wallet_id, l.wallet_id) AS wallet_id,
       coalesce(t.trade_count, 0) AS trade_count,
       coalesce(t.spot_volume_usd, 0) AS spot_volume_usd,
       coalesce(t.perp_volume_usd, 0) AS perp_volume_usd,
       coalesce(t.outcome_volume_usd, 0) AS outcome_volume_usd,
       coalesce(t.fees_usd, 0) AS fees_usd,
       coalesce(t.realized_pnl_usd, 0) AS realized_pnl_usd,
       coalesce(t.unpriced_fills, 0) AS unpriced_fills,
       coalesce(fu.funding_usd, 0) AS funding_usd,
       coalesce(l.deposits_usd, 0) AS deposits_usd,
       coalesce(l.withdrawals_usd, 0) AS withdrawals_usd
FROM trading t
FULL JOIN funding fu ON fu.wallet_id = t.wallet_id
FULL JOIN ledger l ON l.wallet_id = coalesce(t.wallet_id, fu.wallet_id)
"""
_UPSERT_COIN_DAYS = """
INSERT INTO wallet_coin_day_metrics (wallet_id, day, coin, market, trade_count, volume_usd,
                                     fees_usd, realized_pnl_usd, unpriced_fills)
SELECT wallet_id, %(day)s, coin, market, trade_count, volume_usd, fees_usd, realized_pnl_usd,
       unpriced_fills
FROM coins
ON CONFLICT (wallet_id, day, coin) DO UPDATE SET
    trade_count = EXCLUDED.trade_count,
    volume_usd = EXCLUDED.volume_usd,
    fees_usd = EXCLUDED.fees_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    unpriced_fills = EXCLUDED.unpriced_fills,
    updated_at = now()
"""
_UPSERT_WALLET_DAYS = """
INSERT INTO wallet_day_metrics (wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd,
                                outcome_volume_usd, fees_usd, realized_pnl_usd, unpriced_fills,
                                funding_usd, deposits_usd, withdrawals_usd)
SELECT wallet_id, %(day)s, trade_count, spot_volume_usd, perp_volume_usd, outcome_volume_usd,
       fees_usd, realized_pnl_usd, unpriced_fills, funding_usd, deposits_usd, withdrawals_usd
FROM agg
ON CONFLICT (wallet_id, day) DO UPDATE SET
    trade_count = EXCLUDED.trade_count,
    spot_volume_usd = EXCLUDED.spot_volume_usd,
    perp_volume_usd = EXCLUDED.perp_volume_usd,
    outcome_volume_usd = EXCLUDED.outcome_volume_usd,
    fees_usd = EXCLUDED.fees_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    unpriced_fills = EXCLUDED.unpriced_fills,
    funding_usd = EXCLUDED.funding_usd,
    deposits_usd = EXCLUDED.deposits_usd,
    withdrawals_usd = EXCLUDED.withdrawals_usd,
    updated_at = now()
"""
# Rebuilds the given wallets' rows of one day, per wallet and per coin, in one statement
# (so the two always agree); a wallet or coin left without fills loses its row.
# Each starts by naming the tables it writes: pg_stat_activity keeps only the first
# kilobyte of a statement (track_activity_query_size), and the INSERTs come later.
REBUILD_WALLET_DAYS = f"""
/* rebuild: INSERT INTO wallet_day_metrics, wallet_coin_day_metrics */
WITH coins AS ({_COIN_AGGREGATE.format(wallet_filter="AND f.wallet_id = ANY(%(wallet_ids)s)")}),
trading AS ({_WALLET_AGGREGATE}),
funding AS ({_FUNDING_AGGREGATE.format(wallet_filter="AND fu.wallet_id = ANY(%(wallet_ids)s)")}),
ledger AS ({_LEDGER_AGGREGATE.format(wallet_filter="AND l.wallet_id = ANY(%(wallet_ids)s)")}),
agg AS ({_DAY_AGGREGATE}),
coins_gone AS (
    DELETE FROM wallet_coin_day_metrics c
    WHERE c.day = %(day)s AND c.wallet_id = ANY(%(wallet_ids)s)
      AND NOT EXISTS (SELECT 1 FROM coins WHERE coins.wallet_id = c.wallet_id
                                            AND coins.coin = c.coin)
),
coins_written AS ({_UPSERT_COIN_DAYS}),
gone AS (
    DELETE FROM wallet_day_metrics m
    WHERE m.day = %(day)s AND m.wallet_id = ANY(%(wallet_ids)s)
      AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.wallet_id = m.wallet_id)
)
{_UPSERT_WALLET_DAYS}
"""
# Rebuilds every wallet's row of one day in one pass over the day's fills.
REBUILD_ALL_WALLET_DAYS = f"""
/* rebuild: INSERT INTO wallet_day_metrics, wallet_coin_day_metrics */
WITH coins AS ({_COIN_AGGREGATE.format(wallet_filter="")}),
trading AS ({_WALLET_AGGREGATE}),
funding AS ({_FUNDING_AGGREGATE.format(wallet_filter="")}),
ledger AS ({_LEDGER_AGGREGATE.format(wallet_filter="")}),
agg AS ({_DAY_AGGREGATE}),
coins_gone AS (
    DELETE FROM wallet_coin_day_metrics c
    WHERE c.day = %(day)s
      AND NOT EXISTS (SELECT 1 FROM coins WHERE coins.wallet_id = c.wallet_id
                                            AND coins.coin = c.coin)
),
coins_written AS ({_UPSERT_COIN_DAYS}),
gone AS (
    DELETE FROM wallet_day_metrics m
    WHERE m.day = %(day)s AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.wallet_id = m.wallet_id)
)
{_UPSERT_WALLET_DAYS}
"""
# Rebuilds one org-day from the wallet-days of the wallets the org tracks; no activity →
# no row. Named first, as the wallet-day rebuilds are: its INSERT is past the first
# kilobyte that pg_stat_activity keeps.
REBUILD_ORG_DAY = """
/* rebuild: INSERT INTO global_day_metrics */
WITH agg AS (
    SELECT count(*) AS wallets,
           (count(*) FILTER (WHERE m.trade_count > 0))::integer AS dau,
           coalesce(sum(m.trade_count), 0)::integer AS trade_count,
           coalesce(sum(m.spot_volume_usd), 0) AS spot_volume_usd,
           coalesce(sum(m.perp_volume_usd), 0) AS perp_volume_usd,
           coalesce(sum(m.outcome_volume_usd), 0) AS outcome_volume_usd,
           coalesce(sum(m.total_volume_usd), 0) AS total_volume_usd,
           coalesce(sum(m.fees_usd), 0) AS fees_usd,
           coalesce(sum(m.realized_pnl_usd), 0) AS realized_pnl_usd,
           coalesce(sum(m.unpriced_fills), 0)::integer AS unpriced_fills,
           coalesce(sum(m.funding_usd), 0) AS funding_usd,
           coalesce(sum(m.deposits_usd), 0) AS deposits_usd,
           coalesce(sum(m.withdrawals_usd), 0) AS withdrawals_usd
    FROM org_wallets ow
    JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id AND m.day = %(day)s
    WHERE ow.org_id = %(org_id)s
),
gone AS (
    DELETE FROM global_day_metrics
    WHERE org_id = %(org_id)s AND day = %(day)s AND (SELECT wallets FROM agg) = 0
)
INSERT INTO global_day_metrics (org_id, day, dau, trade_count, spot_volume_usd, perp_volume_usd,
                                outcome_volume_usd, total_volume_usd, fees_usd, realized_pnl_usd,
                                avg_volume_per_user, unpriced_fills, funding_usd,
                                deposits_usd, withdrawals_usd)
SELECT %(org_id)s, %(day)s, dau, trade_count, spot_volume_usd, perp_volume_usd,
       outcome_volume_usd, total_volume_usd, fees_usd, realized_pnl_usd,
       CASE WHEN dau > 0 THEN round(total_volume_usd / dau, 2) ELSE 0 END, unpriced_fills,
       funding_usd, deposits_usd, withdrawals_usd
FROM agg
WHERE wallets > 0
ON CONFLICT (org_id, day) DO UPDATE SET
    dau = EXCLUDED.dau,
    trade_count = EXCLUDED.trade_count,
    spot_volume_usd = EXCLUDED.spot_volume_usd,
    perp_volume_usd = EXCLUDED.perp_volume_usd,
    outcome_volume_usd = EXCLUDED.outcome_volume_usd,
    total_volume_usd = EXCLUDED.total_volume_usd,
    fees_usd = EXCLUDED.fees_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    avg_volume_per_user = EXCLUDED.avg_volume_per_user,
    unpriced_fills = EXCLUDED.unpriced_fills,
    funding_usd = EXCLUDED.funding_usd,
    deposits_usd = EXCLUDED.deposits_usd,
    withdrawals_usd = EXCLUDED.withdrawals_usd,
    updated_at = now()
"""
# The days on which any of the wallets has metrics: what tracking them changes in an org.
SELECT_ACTIVE_DAYS = """
SELECT DISTINCT day FROM wallet_day_metrics WHERE wallet_id = ANY(%s) ORDER BY day
"""
SELECT_WALLET_DAY = """
SELECT wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd, outcome_volume_usd,
       total_volume_usd, fees_usd, realized_pnl_usd, unpriced_fills, funding_usd,
       deposits_usd, withdrawals_usd
FROM wallet_day_metrics WHERE wallet_id = %s AND day = %s
"""
SELECT_ORG_DAYS = """
SELECT org_id, day, dau, trade_count, spot_volume_usd, perp_volume_usd, outcome_volume_usd,
       total_volume_usd, fees_usd, realized_pnl_usd, avg_volume_per_user, unpriced_fills,
       funding_usd, deposits_usd, withdrawals_usd
FROM global_day_metrics WHERE org_id = %s ORDER BY day
"""


@dataclass(frozen=True)
class WalletDayMetrics:
    """A stored row of `wallet_day_metrics`."""

    wallet_id: int
    day: date
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    unpriced_fills: int
    funding_usd: Decimal = Decimal(0)
    deposits_usd: Decimal = Decimal(0)
    withdrawals_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class OrgDay:
    org_id: uuid.UUID
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
    unpriced_fills: int
    funding_usd: Decimal = Decimal(0)
    deposits_usd: Decimal = Decimal(0)
    withdrawals_usd: Decimal = Decimal(0)


def _day_params(day: date, usd_tokens: Sequence[str]) -> dict[str, object]:
    lo, hi = day_bounds_ms(day)
    return {"day": day, "lo": lo, "hi": hi, **pricing_params(usd_tokens)}


def rebuild_wallet_days(
    conn: psycopg.Connection,
    wallet_ids: Sequence[int],
    day: date,
    *,
    usd_tokens: Sequence[str] = DEFAULT_USD_TOKENS,
    running_totals: bool = True,
) -> int:
    """Recomputes the wallets' metrics of `day` from their raw fills, then their running
    totals from `day` on (storage/read_models.py; `running_totals=False`: the caller
    refreshes them once after many days); returns wallet-day rows written.

    Call it inside a transaction: it first waits for other rebuilds of these wallets.
    """
    lock_wallet_days(conn, wallet_ids)
    written = _rebuild_wallet_days(conn, wallet_ids, day, usd_tokens)
    if running_totals:
        day_totals.refresh_read_models(conn, wallet_ids, day, one_day=True)
    return written


def _rebuild_wallet_days(
    conn: psycopg.Connection, wallet_ids: Sequence[int], day: date, usd_tokens: Sequence[str]
) -> int:
    params = {**_day_params(day, usd_tokens), "wallet_ids": list(wallet_ids)}
    return conn.execute(REBUILD_WALLET_DAYS, params).rowcount


def rebuild_wallet_day(
    conn: psycopg.Connection,
    wallet_id: int,
    day: date,
    *,
    usd_tokens: Sequence[str] = DEFAULT_USD_TOKENS,
) -> bool:
    """Recomputes one wallet-day; returns whether the wallet had a fill that day."""
    return rebuild_wallet_days(conn, [wallet_id], day, usd_tokens=usd_tokens) > 0


def rebuild_all_wallet_days(
    conn: psycopg.Connection,
    day: date,
    *,
    usd_tokens: Sequence[str] = DEFAULT_USD_TOKENS,
    running_totals: bool = True,
) -> int:
    """Recomputes every wallet's metrics of `day` in one statement, then the running
    totals from `day` on (as `rebuild_wallet_days`); returns wallet-day rows written.

    Call it inside a transaction: it first waits for rebuilds in flight to commit.
    """
    lock_all_wallet_days(conn)
    written = conn.execute(REBUILD_ALL_WALLET_DAYS, _day_params(day, usd_tokens)).rowcount
    if running_totals:
        day_totals.refresh_read_models(conn, None, day, one_day=True)
    return written


def rebuild_org_day(conn: psycopg.Connection, org_id: uuid.UUID, day: date) -> bool:
    """Recomputes one org-day and notifies listeners on commit; returns whether it had activity.

    Call it inside a transaction: it first waits for other rebuilds of this org-day.
    """
    lock_org_day(conn, org_id, day)
    # Before the org-day's row (see storage/ranks.py): the org's pending standing ranks.
    ranks.flush(conn, org_id)
    written = conn.execute(REBUILD_ORG_DAY, {"org_id": org_id, "day": day}).rowcount
    org_coins.rebuild(conn, org_id, day)
    changes.notify_changed(conn, org_id, day)
    return written > 0


# The first and last UTC day holding a fill, a funding payment or a wallet-day row of
# the wallets (all: NULL).
SELECT_DAY_SPAN = f"""
WITH f AS (
    SELECT min(time) AS lo, max(time) AS hi FROM hl_fills_raw
    WHERE %(wallet_ids)s::bigint[] IS NULL OR wallet_id = ANY(%(wallet_ids)s)
),
fu AS (
    SELECT min(time) AS lo, max(time) AS hi FROM hl_funding
    WHERE %(wallet_ids)s::bigint[] IS NULL OR wallet_id = ANY(%(wallet_ids)s)
),
l AS (
    SELECT min(time) AS lo, max(time) AS hi FROM hl_ledger
    WHERE %(wallet_ids)s::bigint[] IS NULL OR wallet_id = ANY(%(wallet_ids)s)
),
m AS (
    SELECT min(day) AS lo, max(day) AS hi FROM wallet_day_metrics
    WHERE %(wallet_ids)s::bigint[] IS NULL OR wallet_id = ANY(%(wallet_ids)s)
)
SELECT least(date '1970-01-01' + (f.lo / {DAY_MS})::integer,
             date '1970-01-01' + (fu.lo / {DAY_MS})::integer,
             date '1970-01-01' + (l.lo / {DAY_MS})::integer, m.lo),
       greatest(date '1970-01-01' + (f.hi / {DAY_MS})::integer,
                date '1970-01-01' + (fu.hi / {DAY_MS})::integer,
                date '1970-01-01' + (l.hi / {DAY_MS})::integer, m.hi)
FROM f, fu, l, m
"""


def day_span(
    conn: psycopg.Connection, wallet_ids: Sequence[int] | None = None
) -> tuple[date, date] | None:
    """The first and last day with a fill or metrics of the wallets (None: of all)."""
    params = {"wallet_ids": None if wallet_ids is None else list(wallet_ids)}
    row = conn.execute(SELECT_DAY_SPAN, params).fetchone()
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


def tracking_orgs(conn: psycopg.Connection, wallet_ids: Sequence[int]) -> list[uuid.UUID]:
    """The orgs tracking any of the wallets: those whose org-days their wallet-days feed."""
    return [row[0] for row in conn.execute(SELECT_TRACKING_ORGS, (list(wallet_ids),))]


# All-time fills of each org's wallets whose volume or fee has no USD value.
SELECT_UNPRICED_BY_ORG = """
SELECT ow.org_id, coalesce(sum(m.unpriced_fills), 0)::bigint
FROM org_wallets ow JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id
GROUP BY ow.org_id
"""


def unpriced_by_org(conn: psycopg.Connection) -> dict[uuid.UUID, int]:
    return {row[0]: int(row[1]) for row in conn.execute(SELECT_UNPRICED_BY_ORG)}


def active_days(conn: psycopg.Connection, wallet_ids: Sequence[int]) -> list[date]:
    return [row[0] for row in conn.execute(SELECT_ACTIVE_DAYS, (list(wallet_ids),))]


def wallet_day(conn: psycopg.Connection, wallet_id: int, day: date) -> WalletDayMetrics | None:
    row = conn.execute(SELECT_WALLET_DAY, (wallet_id, day)).fetchone()
    return WalletDayMetrics(*row) if row else None


def org_days(conn: psycopg.Connection, org_id: uuid.UUID) -> list[OrgDay]:
    return [OrgDay(*row) for row in conn.execute(SELECT_ORG_DAYS, (org_id,))]


# -- pending wallet-days: what the pipeline's rollup jobs drain ---------------------------

# An ingest page's new (wallet, day) pairs, with the sync batches of the ingest job
# (`job_id`, NULL outside a job). A pair already pending keeps its row and gains the
# batches; one that a running rollup has taken (deleted, not yet committed) makes this
# insert wait for that rollup's commit, then is pending again: the rollup may not have
# seen this page's fills.
INSERT_PENDING = """
INSERT INTO rollup_pending (day, wallet_id, batches)
SELECT d, %(wallet_id)s, coalesce((SELECT j.batches FROM jobs j WHERE j.id = %(job_id)s), '{}')
FROM unnest(%(days)s::date[]) AS d
ON CONFLICT (day, wallet_id) DO UPDATE
    SET batches = ARRAY(SELECT DISTINCT b FROM unnest(rollup_pending.batches || EXCLUDED.batches) b)
    WHERE NOT rollup_pending.batches @> EXCLUDED.batches
"""
# Takes up to `limit` of the day's pending wallets, in wallet order. Rows another rollup
# holds (or an ingest is updating) are skipped, not waited for: two rollups of one day
# share its rows instead of queueing behind each other.
TAKE_PENDING = """
WITH taken AS (
    DELETE FROM rollup_pending
    WHERE day = %(day)s AND wallet_id IN (
        SELECT wallet_id FROM rollup_pending WHERE day = %(day)s
        ORDER BY wallet_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    )
    RETURNING wallet_id, batches
)
SELECT ARRAY(SELECT wallet_id FROM taken ORDER BY wallet_id),
       ARRAY(SELECT DISTINCT b FROM taken, unnest(taken.batches) AS b ORDER BY b)
"""
# Whether the day still has pending rows this transaction did not take: rows held by
# another rollup (still visible until it commits) or committed since the take.
ANY_PENDING = "SELECT EXISTS (SELECT 1 FROM rollup_pending WHERE day = %s)"
SELECT_TRACKING_ORGS = """
SELECT DISTINCT org_id FROM org_wallets WHERE wallet_id = ANY(%s) ORDER BY org_id
"""
COUNT_PENDING = "SELECT count(*) FROM rollup_pending WHERE day = %s"

# Wallets a `rollup_wallet_days` job rebuilds in one transaction. Each holds its
# advisory lock until commit, and PostgreSQL's shared lock table is sized for
# max_locks_per_transaction × max_connections (6,400 by default) across all
# sessions: 500 leaves room for a default worker's 8 threads all running chunks.
# Bigger chunks barely help: a chunk is one statement of per-wallet index scans.
PENDING_CHUNK = 500


@dataclass(frozen=True)
class DayRollup:
    """What one chunk of a `rollup_wallet_days` job did.

    `org_ids`: the orgs tracking the rebuilt wallets (their org-days to recompute);
    `batches`: the sync batches of the ingests that made those wallet-days pending;
    `more`: the day still has pending rows (another chunk, or rows another job holds);
    `full`: the chunk took as many rows as it could, so the rest can be taken at once.
    """

    wallet_ids: list[int]
    org_ids: list[uuid.UUID]
    batches: list[str]
    more: bool
    full: bool


def add_pending(
    conn: psycopg.Connection, wallet_id: int, days: Iterable[date], *, job_id: int | None = None
) -> None:
    """Marks the wallet's `days` for rollup, in the caller's (ingest page) transaction."""
    params = {"wallet_id": wallet_id, "days": sorted(set(days)), "job_id": job_id}
    conn.execute(INSERT_PENDING, params)


# DO UPDATE, not DO NOTHING: it locks a pending row that already exists until the
# caller commits, so a rollup taking the day's rows (FOR UPDATE SKIP LOCKED) skips it
# and comes back for it, instead of rebuilding the wallet-day without the new fills.
INSERT_PENDING_MANY = """
INSERT INTO rollup_pending (day, wallet_id, batches)
SELECT d, w, '{}' FROM unnest(%s::bigint[], %s::date[]) AS t(w, d) ORDER BY d, w
ON CONFLICT (day, wallet_id) DO UPDATE SET batches = rollup_pending.batches
"""


def add_pending_many(conn: psycopg.Connection, wallet_days: Iterable[tuple[int, date]]) -> None:
    """Marks many (wallet, day) pairs for rollup at once (a node batch's new fills), in the
    caller's transaction; outside any sync batch."""
    pairs = sorted(set(wallet_days), key=lambda wd: (wd[1], wd[0]))
    if pairs:
        conn.execute(INSERT_PENDING_MANY, ([w for w, _ in pairs], [d for _, d in pairs]))


def rollup_pending_chunk(
    conn: psycopg.Connection,
    day: date,
    *,
    limit: int | None = None,
    usd_tokens: Sequence[str] = DEFAULT_USD_TOKENS,
) -> DayRollup:
    """The database side of a `rollup_wallet_days` job, in the caller's transaction:
    takes up to `limit` (default PENDING_CHUNK) of the day's pending wallets, locks and
    rebuilds their wallet-days in one statement. A rollback puts the taken rows back."""
    limit = limit or PENDING_CHUNK
    relax_commit(conn)
    row = conn.execute(TAKE_PENDING, {"day": day, "limit": limit}).fetchone()
    assert row is not None
    wallet_ids, batches = [int(w) for w in row[0]], list(row[1])
    org_ids: list[uuid.UUID] = []
    if wallet_ids:
        rebuild_wallet_days(conn, wallet_ids, day, usd_tokens=usd_tokens)
        org_ids = tracking_orgs(conn, wallet_ids)
    more = conn.execute(ANY_PENDING, (day,)).fetchone()
    return DayRollup(wallet_ids, org_ids, batches, bool(more and more[0]), len(wallet_ids) >= limit)


# Every wallet-day holding a fill or a funding payment of the coins: what a change of
# their pricing affects.
INSERT_PENDING_FOR_COINS = f"""
WITH affected AS (
    SELECT DISTINCT date '1970-01-01' + (time / {DAY_MS})::integer AS day, wallet_id
    FROM hl_fills_raw WHERE coin = ANY(%(coins)s)
    UNION
    SELECT DISTINCT date '1970-01-01' + (time / {DAY_MS})::integer AS day, wallet_id
    FROM hl_funding WHERE coin = ANY(%(coins)s)
),
added AS (
    INSERT INTO rollup_pending (day, wallet_id) SELECT day, wallet_id FROM affected
    ON CONFLICT (day, wallet_id) DO NOTHING
)
SELECT DISTINCT day FROM affected ORDER BY day
"""


def add_pending_for_coins(conn: psycopg.Connection, coins: Sequence[str]) -> list[date]:
    """Marks every wallet-day with a fill of `coins` for rollup; returns those days."""
    if not coins:
        return []
    return [row[0] for row in conn.execute(INSERT_PENDING_FOR_COINS, {"coins": list(coins)})]


def pending_count(conn: psycopg.Connection, day: date) -> int:
    row = conn.execute(COUNT_PENDING, (day,)).fetchone()
    return int(row[0]) if row else 0


# Rebuilds of one row are serialised, and each waits for the previous one to commit
# before its statement takes its snapshot: otherwise a rebuild that read fewer fills
# could commit last and overwrite a fresher one. Keys: a lock family, then the wallet
# (all its days: coarser, and just as cheap) or the org-day. The set-based rebuild of
# a whole day takes a table lock instead, which no per-wallet rebuild can pass.
_WALLET_LOCK_CLASS = 0x686C7277
_ORG_LOCK_CLASS = 0x686C7267
LOCK_WALLET_DAYS = """
SELECT pg_advisory_xact_lock(%s, (id %% 2147483647)::integer)
FROM unnest(%s::bigint[]) AS id ORDER BY id
"""
LOCK_ALL_WALLET_DAYS = "LOCK TABLE wallet_day_metrics IN SHARE ROW EXCLUSIVE MODE"
LOCK_ORG_DAY = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"


def lock_wallet_days(conn: psycopg.Connection, wallet_ids: Sequence[int]) -> None:
    conn.execute(LOCK_WALLET_DAYS, (_WALLET_LOCK_CLASS, sorted(set(wallet_ids))))


def lock_all_wallet_days(conn: psycopg.Connection) -> None:
    conn.execute(LOCK_ALL_WALLET_DAYS)


def lock_org_day(conn: psycopg.Connection, org_id: uuid.UUID, day: date) -> None:
    conn.execute(LOCK_ORG_DAY, (_ORG_LOCK_CLASS, f"{org_id}:{day.isoformat()}"))


# Why a rebuild may skip waiting for its commit to reach disk: it runs inside a
# job whose ack is a later, synchronous commit, and PostgreSQL's WAL is a single
# sequence, so flushing the ack flushes the rebuild too. A crash before that
# flush loses the rebuild *and* the ack, and the job runs again. Meanwhile the
# rebuild's row locks (the de-duplicated org-day job every wallet rollup of a
# day touches) are held for microseconds instead of a disk flush.
RELAX_COMMIT = "SET LOCAL synchronous_commit = off"


def relax_commit(conn: psycopg.Connection) -> None:
    """For a rebuild run by a job: see RELAX_COMMIT. Call inside the transaction."""
    conn.execute(RELAX_COMMIT)
