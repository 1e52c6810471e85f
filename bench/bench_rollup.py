"""Rollup: rebuilding one busy day's wallet-day and org-day metrics.

The day holds 1,000,000 fills over 10,000 wallets (QUICK: 50,000 over 1,000),
generated in SQL with `generate_series` and spread over perp and spot coins
and fee tokens. Figures:

- what the pipeline does: the day's 10,000 wallet-days pending (as ingest
  leaves them) drained by `rollup_wallet_days` jobs, each a chunk of
  `storage.rollups.PENDING_CHUNK` wallets in one transaction with the org-day
  rollups it queues and its own next run:
  - through a real Dramatiq worker of 4 threads on the project's broker, from
    the first message sent to the last wallet-days job done (delivery included);
  - as job bodies called by 4 threads, without the broker's delivery;
- the set-based `rebuild_all_wallet_days`, one statement for the whole day;
- the org-day rebuild of an org tracking every wallet.

Every rollup also keeps the read models (storage.read_models, storage.day_totals),
with the day totals kept through the day as the scheduler keeps them through today.

The baseline is a plain scan of the same day's fills (`count(*)`,
`sum(px * sz)`), the least any rebuild has to read.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import dramatiq
import psycopg

from bench.common import BenchContext, Goal, Result, median_of, timed
from hl_core.settings import Settings
from jobs import actors
from jobs.pipeline import Pipeline, build
from storage import day_totals, orgs, ranks, rollups
from storage.fills import day_bounds_ms

DAY = date(2026, 11, 2)
THREADS = 4

_WALLETS = """
INSERT INTO wallets (address)
SELECT '0x' || lpad(to_hex(i), 40, '0') FROM generate_series(1, %(wallets)s) AS i
"""
# Fill i belongs to wallet (i mod wallets) + 1, at an evenly spread time of the day.
_FILLS = """
INSERT INTO hl_fills_raw (wallet_id, time, tid, oid, coin, side, px, sz, dir, start_position,
                          closed_pnl, fee, fee_token, builder_fee, hash, crossed)
SELECT w.first_id + (i %% %(wallets)s),
       %(lo)s + (i::bigint * 86399999) / %(fills)s,
       i, i,
       (ARRAY['BTC', 'ETH', '@107', 'PURR/USDC', 'xyz:TSLA'])[1 + i %% 5],
       CASE WHEN i %% 2 = 0 THEN 'B' ELSE 'A' END,
       (100 + i %% 997)::numeric / 7,
       (1 + i %% 13)::numeric / 100,
       'Open Long', 0,
       ((i %% 201) - 100)::numeric / 10,
       ((i %% 50) - 5)::numeric / 1000,
       CASE WHEN i %% 5 = 2 THEN 'HYPE' ELSE 'USDC' END,
       NULL, '0x00', true
FROM generate_series(0, %(fills)s - 1) AS i, (SELECT min(id) AS first_id FROM wallets) AS w
"""
_TRACK_ALL = "INSERT INTO org_wallets (org_id, wallet_id) SELECT %s, id FROM wallets"
_SCAN = "SELECT count(*), sum(px * sz) FROM hl_fills_raw WHERE time >= %s AND time < %s"
_DAY_SUM = "SELECT sum(total_volume_usd) FROM wallet_day_metrics WHERE day = %s"
_PENDING_RANKS = "SELECT count(*) FROM org_wallet_ranks_pending"


def _prepare(url: str, fills: int, wallets: int) -> tuple[list[int], uuid.UUID]:
    lo, _ = day_bounds_ms(DAY)
    with psycopg.connect(url) as conn:
        conn.execute(_WALLETS, {"wallets": wallets})
        conn.execute(_FILLS, {"wallets": wallets, "fills": fills, "lo": lo})
        org = orgs.create_org(conn, "bench").id
        conn.execute(_TRACK_ALL, (org,))
        # The day totals and the standing ranks kept through the day, as the scheduler
        # keeps them through today: each rollup writes the day's row of its wallets' day
        # totals and lists their ranks as pending for the org-day rollup.
        day_totals.extend_day_totals(conn, DAY)
        ranks.shift(conn, DAY)
        ids = [row[0] for row in conn.execute("SELECT id FROM wallets ORDER BY id")]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return ids, org


_PEND_ALL = "INSERT INTO rollup_pending (day, wallet_id) SELECT %s, id FROM wallets"
# What a run leaves queued (the org-day rollups, 1 s later): cleared between runs.
_CLEAR_JOBS = "DELETE FROM jobs"
_WALLET_DAYS_LEFT = """
SELECT count(*) FROM jobs WHERE actor = 'rollup_wallet_days' AND state IN ('queued', 'running')
"""


def _pend_all(conn: psycopg.Connection) -> None:
    conn.execute(_CLEAR_JOBS)
    conn.execute(_PEND_ALL, (DAY,))


def _drain_bodies(p: Pipeline, conn: psycopg.Connection, threads: int) -> float:
    """The day's pending wallet-days drained by `rollup_wallet_days` bodies on `threads`."""
    _pend_all(conn)
    day = DAY.isoformat()

    def work(_: int) -> None:
        with p.pool.connection() as own:
            while rollups.pending_count(own, DAY):
                actors.rollup_wallet_days(p, day)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return time.perf_counter() - started


def _drain_worker(p: Pipeline, conn: psycopg.Connection) -> float:
    """The same through the broker: one message sent, a worker running the jobs."""
    _pend_all(conn)
    started = time.perf_counter()
    with conn.transaction():
        actors.send_wallet_days_rollups(p, conn, [DAY])
    while True:
        left = conn.execute(_WALLET_DAYS_LEFT).fetchone()
        if left == (0,):
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    assert rollups.pending_count(conn, DAY) == 0
    return elapsed


def run(ctx: BenchContext) -> list[Result]:
    fills = ctx.scale(1_000_000, 50_000)
    wallets = ctx.scale(10_000, 1_000)
    url = ctx.database()
    ids, org = _prepare(url, fills, wallets)
    lo, hi = day_bounds_ms(DAY)
    size = f"{fills:,} fills, {wallets:,} wallets"
    runs = min(ctx.runs, 3)

    with psycopg.connect(url, autocommit=True) as conn:
        scan = median_of(runs, lambda: timed(lambda: conn.execute(_SCAN, (lo, hi)).fetchall()))

        def set_based() -> None:
            with conn.transaction():
                rollups.rebuild_all_wallet_days(conn, DAY)

        p = build(Settings.from_env({}), url, pool_size=THREADS + 1, poll_s=0.05)
        try:
            p.pool.wait()
            bodies = median_of(runs, lambda: _drain_bodies(p, conn, THREADS))
            p.broker.emit_after("process_boot")
            worker = dramatiq.Worker(p.broker, worker_threads=THREADS)
            worker.start()
            try:
                through_worker = median_of(runs, lambda: _drain_worker(p, conn))
            finally:
                worker.stop()
            conn.execute(_CLEAR_JOBS)
        finally:
            p.close()
        expected = conn.execute(_DAY_SUM, (DAY,)).fetchone()
        one_statement = median_of(runs, lambda: timed(set_based))
        assert conn.execute(_DAY_SUM, (DAY,)).fetchone() == expected, "paths disagree"

        def flush_ranks() -> None:
            with conn.transaction():
                ranks.flush(conn, org)

        # The rollups above left every wallet's standing ranks pending: what the org-day
        # rollup after a day's rollups recomputes (once; the runs below find none).
        assert conn.execute(_PENDING_RANKS).fetchone() == (len(ids),)
        flushed = timed(flush_ranks)

        def org_day_rebuild() -> None:
            with conn.transaction():
                rollups.rebuild_org_day(conn, org, DAY)

        org_day = median_of(ctx.runs, lambda: timed(org_day_rebuild))
        sum_scan = median_of(
            ctx.runs,
            lambda: timed(lambda: conn.execute(_DAY_SUM, (DAY,)).fetchall()),
        )
    chunks = -(-len(ids) // rollups.PENDING_CHUNK)
    return [
        Result(
            f"rollup: day's {len(ids):,} pending wallet-days, {chunks} rollup_wallet_days "
            f"jobs through a {THREADS}-thread worker ({size})",
            "s",
            through_worker,
            "scan of the day's fills",
            scan,
            "< 5 s for the whole day",
            Goal("value", "<", 5.0),
        ),
        Result(
            f"rollup: the same as rollup_wallet_days job bodies, {THREADS} threads ({size})",
            "s",
            bodies,
            "scan of the day's fills",
            scan,
            "< 5 s for the whole day",
            Goal("value", "<", 5.0),
        ),
        Result(
            f"rollup: day's wallet-days, one set-based statement ({size})",
            "s",
            one_statement,
            "scan of the day's fills",
            scan,
            "< 5 s for the whole day",
            Goal("value", "<", 5.0),
        ),
        Result(
            f"rollup: org-day of an org tracking all {wallets:,} wallets",
            "s",
            org_day,
            "sum over the day's wallet-days",
            sum_scan,
            "< 0.2 s",
            Goal("value", "<", 0.2),
        ),
        Result(
            f"rollup: the org-day's standing ranks of all {wallets:,} wallets, pending after "
            "the day's rollups (3 spans)",
            "s",
            flushed,
            "the org-day itself",
            org_day,
            "informational (once per org-day rollup, for the wallets rolled up since)",
        ),
    ]
