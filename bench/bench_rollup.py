"""Rollup: rebuilding one busy day's wallet-day and org-day metrics.

The day holds 1,000,000 fills over 10,000 wallets (QUICK: 50,000 over 1,000),
generated in SQL with `generate_series` and spread over perp and spot coins
and fee tokens. Figures:

- what the pipeline does: the body of one `rollup_wallet_day` job per wallet
  (its transaction: the rebuild statement, then queueing the org-day rollup
  of every org tracking the wallet, merged by its de-duplication key), run by
  4 threads as a worker's threads run them (the default worker has 2 processes
  × 4 threads); broker delivery is measured by the broker benchmark;
- the set-based `rebuild_all_wallet_days`, one statement for the whole day;
- the org-day rebuild of an org tracking every wallet.

The baseline is a plain scan of the same day's fills (`count(*)`,
`sum(px * sz)`), the least any rebuild has to read.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import psycopg

from bench.common import BenchContext, Result, median_of, timed
from hl_analytics.settings import Settings
from jobs import actors
from jobs.app import Pipeline, build
from storage import orgs, rollups
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


def _prepare(url: str, fills: int, wallets: int) -> tuple[list[int], uuid.UUID]:
    lo, _ = day_bounds_ms(DAY)
    with psycopg.connect(url) as conn:
        conn.execute(_WALLETS, {"wallets": wallets})
        conn.execute(_FILLS, {"wallets": wallets, "fills": fills, "lo": lo})
        org = orgs.create_org(conn, "bench").id
        conn.execute(_TRACK_ALL, (org,))
        ids = [row[0] for row in conn.execute("SELECT id FROM wallets ORDER BY id")]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return ids, org


def _job_bodies(p: Pipeline, addresses: list[str], threads: int) -> None:
    day = DAY.isoformat()

    def work(k: int) -> None:
        for address in addresses[k::threads]:
            actors.rollup_wallet_day(p, address, day)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


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

        addresses = [w.address for w in orgs.tracked_wallets(conn, org)]
        p = build(Settings.from_env({}), url, pool_size=THREADS)
        try:
            p.pool.wait()
            pipeline = median_of(runs, lambda: timed(lambda: _job_bodies(p, addresses, THREADS)))
        finally:
            p.close()
        one_statement = median_of(runs, lambda: timed(set_based))

        def org_day_rebuild() -> None:
            with conn.transaction():
                rollups.rebuild_org_day(conn, org, DAY)

        org_day = median_of(ctx.runs, lambda: timed(org_day_rebuild))
        sum_scan = median_of(
            ctx.runs,
            lambda: timed(lambda: conn.execute(_DAY_SUM, (DAY,)).fetchall()),
        )
    return [
        Result(
            f"rollup: day's wallet-days as {len(ids):,} rollup_wallet_day jobs, "
            f"{THREADS} threads ({size})",
            "s",
            pipeline,
            "scan of the day's fills",
            scan,
            "< 5 s for the whole day",
        ),
        Result(
            f"rollup: day's wallet-days, one set-based statement ({size})",
            "s",
            one_statement,
            "scan of the day's fills",
            scan,
            "< 5 s for the whole day",
        ),
        Result(
            f"rollup: org-day of an org tracking all {wallets:,} wallets",
            "s",
            org_day,
            "sum over the day's wallet-days",
            sum_scan,
            "< 0.2 s",
        ),
    ]
