"""Derived daily metrics: `wallet_day_metrics` and `global_day_metrics`.

Every rebuild is one set-based statement that recomputes a row from its source
(never an increment), so running it twice, concurrently, or after a crash gives
the same numbers. The domain rules of DESIGN.md live here and nowhere else:

- a fill belongs to the UTC day of its `time`; the day's range is computed in
  Python (`day_bounds_ms`) so the partition and index on `time` are used;
- spot = `coin` starts with `@` or contains `/`; every other coin is perp;
- volume = `px × sz`; fees in USD = `fee` when `fee_token` is USDC, else
  `fee × px` (`fee` already includes `builder_fee`, which is never added);
- realized PnL = sum of `closed_pnl`; trade count = number of fills;
- an org-day sums the wallet-days of the wallets the org tracks *now*;
  DAU = those wallets with at least one fill that day;
  `avg_volume_per_user` = round(total / DAU, 2).

Rows exist only for activity: a wallet-day whose fills are gone, and an
org-day none of whose tracked wallets traded, are deleted rather than kept as
zeros. Readers (the API) turn a missing day into zeros. All sums are NUMERIC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg

from storage import changes
from storage.fills import day_bounds_ms

# One aggregate per wallet over the fills of [lo, hi); shared by the rebuilds below.
_WALLET_AGGREGATE = """
SELECT wallet_id,
       count(*)::integer AS trade_count,
       coalesce(sum(px * sz) FILTER (WHERE left(coin, 1) = '@' OR strpos(coin, '/') > 0), 0)
           AS spot_volume_usd,
       coalesce(sum(px * sz) FILTER (WHERE NOT (left(coin, 1) = '@' OR strpos(coin, '/') > 0)), 0)
           AS perp_volume_usd,
       sum(CASE WHEN fee_token = 'USDC' THEN fee ELSE fee * px END) AS fees_usd,
       sum(closed_pnl) AS realized_pnl_usd
FROM hl_fills_raw
WHERE time >= %(lo)s AND time < %(hi)s {wallet_filter}
GROUP BY wallet_id
"""
_UPSERT_WALLET_DAYS = """
INSERT INTO wallet_day_metrics (wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd,
                                fees_usd, realized_pnl_usd)
SELECT wallet_id, %(day)s, trade_count, spot_volume_usd, perp_volume_usd, fees_usd,
       realized_pnl_usd
FROM agg
ON CONFLICT (wallet_id, day) DO UPDATE SET
    trade_count = EXCLUDED.trade_count,
    spot_volume_usd = EXCLUDED.spot_volume_usd,
    perp_volume_usd = EXCLUDED.perp_volume_usd,
    fees_usd = EXCLUDED.fees_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    updated_at = now()
"""
# Rebuilds the given wallets' rows of one day; a wallet left without fills loses its row.
REBUILD_WALLET_DAYS = f"""
WITH agg AS ({_WALLET_AGGREGATE.format(wallet_filter="AND wallet_id = ANY(%(wallet_ids)s)")}),
gone AS (
    DELETE FROM wallet_day_metrics m
    WHERE m.day = %(day)s AND m.wallet_id = ANY(%(wallet_ids)s)
      AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.wallet_id = m.wallet_id)
)
{_UPSERT_WALLET_DAYS}
"""
# Rebuilds every wallet's row of one day in one pass over the day's fills.
REBUILD_ALL_WALLET_DAYS = f"""
WITH agg AS ({_WALLET_AGGREGATE.format(wallet_filter="")}),
gone AS (
    DELETE FROM wallet_day_metrics m
    WHERE m.day = %(day)s AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.wallet_id = m.wallet_id)
)
{_UPSERT_WALLET_DAYS}
"""
# Rebuilds one org-day from the wallet-days of the wallets the org tracks; no activity → no row.
REBUILD_ORG_DAY = """
WITH agg AS (
    SELECT count(*)::integer AS dau,
           sum(m.trade_count)::integer AS trade_count,
           sum(m.spot_volume_usd) AS spot_volume_usd,
           sum(m.perp_volume_usd) AS perp_volume_usd,
           sum(m.total_volume_usd) AS total_volume_usd,
           sum(m.fees_usd) AS fees_usd,
           sum(m.realized_pnl_usd) AS realized_pnl_usd
    FROM org_wallets ow
    JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id AND m.day = %(day)s
    WHERE ow.org_id = %(org_id)s AND m.trade_count > 0
),
gone AS (
    DELETE FROM global_day_metrics
    WHERE org_id = %(org_id)s AND day = %(day)s AND (SELECT dau FROM agg) = 0
)
INSERT INTO global_day_metrics (org_id, day, dau, trade_count, spot_volume_usd, perp_volume_usd,
                                total_volume_usd, fees_usd, realized_pnl_usd, avg_volume_per_user)
SELECT %(org_id)s, %(day)s, dau, trade_count, spot_volume_usd, perp_volume_usd,
       total_volume_usd, fees_usd, realized_pnl_usd, round(total_volume_usd / dau, 2)
FROM agg
WHERE dau > 0
ON CONFLICT (org_id, day) DO UPDATE SET
    dau = EXCLUDED.dau,
    trade_count = EXCLUDED.trade_count,
    spot_volume_usd = EXCLUDED.spot_volume_usd,
    perp_volume_usd = EXCLUDED.perp_volume_usd,
    total_volume_usd = EXCLUDED.total_volume_usd,
    fees_usd = EXCLUDED.fees_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    avg_volume_per_user = EXCLUDED.avg_volume_per_user,
    updated_at = now()
"""
# The days on which any of the wallets has metrics: what tracking them changes in an org.
SELECT_ACTIVE_DAYS = """
SELECT DISTINCT day FROM wallet_day_metrics WHERE wallet_id = ANY(%s) ORDER BY day
"""
SELECT_WALLET_DAY = """
SELECT wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd, total_volume_usd,
       fees_usd, realized_pnl_usd
FROM wallet_day_metrics WHERE wallet_id = %s AND day = %s
"""
SELECT_ORG_DAYS = """
SELECT org_id, day, dau, trade_count, spot_volume_usd, perp_volume_usd, total_volume_usd,
       fees_usd, realized_pnl_usd, avg_volume_per_user
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
    total_volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal


@dataclass(frozen=True)
class OrgDay:
    org_id: uuid.UUID
    day: date
    dau: int
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    total_volume_usd: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    avg_volume_per_user: Decimal


def _day_params(day: date) -> dict[str, object]:
    lo, hi = day_bounds_ms(day)
    return {"day": day, "lo": lo, "hi": hi}


def rebuild_wallet_days(conn: psycopg.Connection, wallet_ids: Sequence[int], day: date) -> int:
    """Recomputes the wallets' metrics of `day` from their raw fills; returns rows written.

    Call it inside a transaction: it first waits for other rebuilds of these wallets.
    """
    lock_wallet_days(conn, wallet_ids)
    return _rebuild_wallet_days(conn, wallet_ids, day)


def _rebuild_wallet_days(conn: psycopg.Connection, wallet_ids: Sequence[int], day: date) -> int:
    params = {**_day_params(day), "wallet_ids": list(wallet_ids)}
    return conn.execute(REBUILD_WALLET_DAYS, params).rowcount


def rebuild_wallet_day(conn: psycopg.Connection, wallet_id: int, day: date) -> bool:
    """Recomputes one wallet-day; returns whether the wallet traded that day."""
    return rebuild_wallet_days(conn, [wallet_id], day) > 0


def rebuild_all_wallet_days(conn: psycopg.Connection, day: date) -> int:
    """Recomputes every wallet's metrics of `day` in one statement; returns rows written.

    Call it inside a transaction: it first waits for rebuilds in flight to commit.
    """
    lock_all_wallet_days(conn)
    return conn.execute(REBUILD_ALL_WALLET_DAYS, _day_params(day)).rowcount


def rebuild_org_day(conn: psycopg.Connection, org_id: uuid.UUID, day: date) -> bool:
    """Recomputes one org-day and notifies listeners on commit; returns whether it had activity.

    Call it inside a transaction: it first waits for other rebuilds of this org-day.
    """
    lock_org_day(conn, org_id, day)
    written = conn.execute(REBUILD_ORG_DAY, {"org_id": org_id, "day": day}).rowcount
    changes.notify_changed(conn, org_id)
    return written > 0


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


def rollup_pending_chunk(
    conn: psycopg.Connection, day: date, *, limit: int | None = None
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
        rebuild_wallet_days(conn, wallet_ids, day)
        org_ids = [r[0] for r in conn.execute(SELECT_TRACKING_ORGS, (wallet_ids,))]
    more = conn.execute(ANY_PENDING, (day,)).fetchone()
    return DayRollup(wallet_ids, org_ids, batches, bool(more and more[0]), len(wallet_ids) >= limit)


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
