"""Dashboard reads at 50,000 wallets and 366 days (QUICK: 2,000 wallets, 120 days).

The org is seeded set-based (bench/read_seed.py). Figures, side by side:

- every read statement of the API (bench/read_seed.py's list: each field, each
  ordering of topWallets, 366/90/7-day ranges ending on the last day and the middle
  half of the history), uncached
  (no response cache: the statement itself), p50 and p99 of its round trip on a
  local connection, against the goal of < 50 ms p99; the baseline is the same
  field's statement on today's tables (the range summed from the wallet-days, as
  before the read models; a statement the read models did not change is its own
  baseline, measured once);
- each dashboard document of API_DOCUMENTS through the API itself (uncached, 4
  connections) while a rollup of 500 wallets lands every second, against the goal of
  < 2 × 50 ms p99; the baseline is its statement's p99 alone;
- the response cache's hit ratio under a simulated rollup stream: the API's
  listener and cache (in memory) while the org's today is notified every second
  (and an old day every fifth), and 40 dashboards' documents ask for D7/D30/D90
  ranges ending today and last month's; against the same requests with every notification
  invalidating the whole org at once (what the cache did before);
- the standing ranks' shift to a new day (every row recomputed), beside the day totals'
  new day;
- storage of the read models (running totals, day totals, org coin-days, standing
  ranks) per wallet-day,
  against the wallet-day tables'.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import psycopg

from bench.common import BenchContext, Goal, Result
from bench.read_seed import USER, Read, Seeded, api_reads, seed
from graph.cache import Answer, ResponseCache
from graph.listener import ChangeListener
from storage import changes, dashboard, day_totals, ranks, rollups
from storage.db import API_SESSION

GOAL_MS = 50.0

# Today's tables' statements, before the read models (the baselines).
BEFORE_TOP_WALLETS = """
SELECT
    row_number() OVER (ORDER BY {key} DESC, w.address),
    w.address,
    sum(m.trade_count), sum(m.spot_volume_usd), sum(m.perp_volume_usd),
    sum(m.outcome_volume_usd), sum(m.total_volume_usd), sum(m.fees_usd),
    sum(m.realized_pnl_usd), count(*) FILTER (WHERE m.trade_count > 0)
FROM org_wallets ow
JOIN wallets w ON w.id = ow.wallet_id
JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id
WHERE ow.org_id = %(org_id)s AND m.day BETWEEN %(start)s AND %(end)s
GROUP BY w.address
HAVING sum(m.trade_count) > 0
ORDER BY {key} DESC, w.address
LIMIT %(limit)s
"""
BEFORE_COIN_BREAKDOWN = """
SELECT c.coin, coalesce(min(mk.display_name), c.coin), c.market,
       sum(c.trade_count)::bigint, sum(c.volume_usd), sum(c.fees_usd),
       sum(c.realized_pnl_usd),
       count(DISTINCT c.wallet_id) FILTER (WHERE c.trade_count > 0)
FROM org_wallets ow
JOIN wallets w ON w.id = ow.wallet_id
JOIN wallet_coin_day_metrics c ON c.wallet_id = ow.wallet_id
LEFT JOIN hl_markets mk ON mk.coin = c.coin
WHERE ow.org_id = %(org_id)s AND c.day BETWEEN %(start)s AND %(end)s
  AND (%(address)s::text IS NULL OR w.address = %(address)s::text)
GROUP BY c.coin, c.market
ORDER BY sum(c.volume_usd) DESC, c.coin
"""


def _before(read: Read) -> str | None:
    """The statement today's tables answer the read with, when it differs."""
    kind = read.name.split(" ")
    if kind[0] == "topWallets":
        # The ordering's expression over range totals `t.<column>`, as sums of the days.
        key = re.sub(r"\bt\.(\w+)", r"sum(m.\1)", dashboard.order_key(kind[1], "t"))
        return BEFORE_TOP_WALLETS.format(key=key)
    if kind[0] == "coinBreakdown" or kind[:2] == ["wallet", "coins"]:
        return BEFORE_COIN_BREAKDOWN
    return None


def _timings(conn: psycopg.Connection, sql: str, params: dict[str, object], n: int) -> list[float]:
    conn.execute(sql, params).fetchall()  # plan and buffers warm, as a live API's are
    out = []
    for _ in range(n):
        start = time.perf_counter()
        conn.execute(sql, params).fetchall()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _reads(ctx: BenchContext, conn: psycopg.Connection, reads: list[Read]) -> list[Result]:
    results = []
    runs, baseline_runs = (10, 2) if ctx.quick else (30, 3)
    for read in reads:
        samples = _timings(conn, read.sql, read.params, runs)
        before = _before(read)
        if before is None:
            base, base_name = statistics.median(samples), "the same statement (unchanged), p50"
        else:
            # Only VOLUME's baseline is measured at full length: the orders cost the same.
            base = statistics.median(_timings(conn, before, read.params, baseline_runs))
            base_name = "the statement before the read models on the wallet-days, p50"
        p50, p99 = statistics.median(samples), _p99(samples)
        results.append(
            Result(
                f"read {read.name}: p99 (p50 {p50:,.1f} ms)",
                "ms",
                p99,
                base_name,
                base,
                f"p99 < {GOAL_MS:.0f} ms",
                Goal("value", "<", GOAL_MS),
            )
        )
    return results


def _new_day(conn: psycopg.Connection, last: date, wallets: int) -> list[Result]:
    """What the scheduler's first tick of a new day writes for the standing ranks (every
    row recomputed: the spans slid), beside the day totals' new day; rolled back."""
    timed = {}
    for name, keep in (("ranks", ranks.shift), ("day totals", day_totals.extend_day_totals)):
        with conn.transaction(force_rollback=True):
            started = time.perf_counter()
            keep(conn, last + timedelta(days=1))
            timed[name] = time.perf_counter() - started
    return [
        Result(
            f"standing ranks: a new day's shift ({wallets:,} wallets x {len(ranks.SPANS)} spans)",
            "s",
            timed["ranks"],
            "the day totals' new day (a row per wallet)",
            timed["day totals"],
            "informational (once a day)",
        )
    ]


def _storage(conn: psycopg.Connection) -> list[Result]:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM wallet_day_metrics),
                  pg_total_relation_size('wallet_running_totals')
                  + pg_total_relation_size('wallet_coin_running_totals')
                  + pg_total_relation_size('wallet_coins')
                  + pg_total_relation_size('wallet_day_totals')
                  + pg_total_relation_size('org_coin_day_metrics')
                  + pg_total_relation_size('org_wallet_ranks'),
                  pg_total_relation_size('wallet_day_metrics')
                  + pg_total_relation_size('wallet_coin_day_metrics')"""
    ).fetchone()
    assert row is not None
    days, models, tables = row
    return [
        Result(
            "storage of the read models per wallet-day",
            "B",
            models / days,
            "the wallet-day and wallet-coin-day tables per wallet-day",
            tables / days,
            "informational",
        )
    ]


# -- cache hit ratio under a rollup stream ---------------------------------------------


async def _hit_ratio(url: str, org: uuid.UUID, seconds: float, per_day: bool) -> float:
    """Requests a second-by-second rollup stream does not hide, over all requests."""
    cache = ResponseCache()
    listener = ChangeListener(url, cache, coalesce_s=2.0 if per_day else 0.001)
    listener.start()
    await asyncio.wait_for(listener.listening.wait(), 30)
    today = datetime.now(UTC).date()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    ranges = {
        "D7": (today - timedelta(days=6), today),
        "D30": (today - timedelta(days=29), today),
        "D90": (today - timedelta(days=89), today),
        "last month": (last_month_end.replace(day=1), last_month_end),
    }
    stop = asyncio.Event()

    async def rollups() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                # Today every second; an old day (a late fill) every fifth.
                day: date | None = today if n % 5 else today - timedelta(days=40)
                payload = changes.payload(org, day if per_day else None)
                await conn.execute("SELECT pg_notify(%s, %s)", (changes.CHANNEL, payload))
                await asyncio.sleep(1.0)

    hits = total = 0
    stream = asyncio.create_task(rollups())
    rng = random.Random(7)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            # 10 dashboards (documents) per range: 40 distinct answers.
            name = rng.choice(list(ranges))
            days = ranges[name]
            key = await cache.key(org, today.isoformat(), f"{name}-{rng.randrange(10)}")
            total += 1
            if await cache.get(key) is not None:
                hits += 1
            else:

                async def compute(days: tuple[date, date] = days) -> Answer:
                    return Answer(200, b'{"data": {}}', 120, (days,))

                await cache.compute_once(key, compute)
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await stream
        await listener.stop()
        await cache.close()
    return hits / total


def _cache(ctx: BenchContext, url: str, org: uuid.UUID) -> list[Result]:
    seconds = 6.0 if ctx.quick else 20.0
    coalesced = asyncio.run(_hit_ratio(url, org, seconds, per_day=True))
    whole_org = asyncio.run(_hit_ratio(url, org, seconds, per_day=False))
    return [
        Result(
            "cache hit ratio, rollup notified every second, 50 requests/s (D7/D30/D90/last month)",
            "%",
            coalesced * 100,
            "every notification invalidating the whole org at once",
            whole_org * 100,
            "higher than the baseline",
            Goal("ratio", ">", 1.0),
        )
    ]


# -- the API itself, uncached, while rollups land -----------------------------------------

# The API's documents, each with the read (bench/read_seed.py's name) whose statement it runs.
API_DOCUMENTS = {
    "dashboardSummary": (
        "{ dashboardSummary { day trackedWallets lastSyncedAt latest { totalVolumeUsd } } }",
        "dashboardSummary",
    ),
    "topWallets(D90, VOLUME, 100)": (
        "{ topWallets(range: D90, limit: 100) { rank address totalVolumeUsd tradeCount } }",
        "topWallets VOLUME 90d",
    ),
    "topWallets(366 days, NET_PNL, 100)": (
        '{ topWallets(between: {from: "%s", to: "%s"}, limit: 100, orderBy: NET_PNL)'
        " { rank address netPnlUsd } }",
        "topWallets NET_PNL 366d",
    ),
    "coinBreakdown(366 days)": (
        '{ coinBreakdown(between: {from: "%s", to: "%s"}) { coin tradeCount volumeUsd wallets } }',
        "coinBreakdown 366d",
    ),
    "trackedWallets(first: 50)": (
        "{ trackedWallets(first: 50) { totalCount edges { node { address syncState"
        " unpricedFills } } } }",
        "trackedWallets page",
    ),
}
API_CONNECTIONS = 4


def _rollup_stream(
    url: str, org: uuid.UUID, last: date, wallets: int, stop: threading.Event
) -> int:
    """Every second, what a rollup of 500 of the org's wallets on the last day writes
    (their wallet-days, then their read models, under the rollup's locks, then the
    org-day and its coin-days); returns the rollups done."""
    rng = random.Random(11)
    done = 0
    with psycopg.connect(url) as conn:
        while not stop.wait(1.0):
            ids = sorted(rng.sample(range(1, wallets + 1), min(500, wallets)))
            with conn.transaction():
                rollups.lock_wallet_days(conn, ids)
                conn.execute(
                    """UPDATE wallet_day_metrics SET trade_count = trade_count + 1,
                              fees_usd = fees_usd + 0.01
                       WHERE day = %s AND wallet_id = ANY(%s)""",
                    (last, ids),
                )
                day_totals.refresh_read_models(conn, ids, last, one_day=True)
            with conn.transaction():
                rollups.rebuild_org_day(conn, org, last)
            done += 1
    return done


def _api(ctx: BenchContext, url: str, seeded: Seeded, db_p99: dict[str, float]) -> list[Result]:
    """Each document's p99 through the API (uncached, 4 connections) while rollups land
    every second, beside its statement's p99 alone."""
    from bench import bench_api

    token = bench_api._token(USER)
    seconds = 3 if ctx.quick else 8
    stop = threading.Event()
    stream = ThreadPoolExecutor(1)
    landed = stream.submit(_rollup_stream, url, seeded.org, seeded.last, seeded.wallets, stop)
    server = bench_api.Server("graphql-uncached", url, "")
    results = []
    try:
        for name, (document, read) in API_DOCUMENTS.items():
            if "%s" in document:
                document = document % (seeded.last - timedelta(days=365), seeded.last)
            body = server.post(document, token)
            if b'"errors"' in body:
                raise RuntimeError(f"{name} failed: {body[:300]!r}")
            load = bench_api._load(ctx, server.url, document, token, seconds, API_CONNECTIONS)
            results.append(
                Result(
                    f"api {name}, uncached, {API_CONNECTIONS} connections, rollups landing:"
                    f" p99 (p50 {load.p50_ms:,.1f} ms, {load.rps:,.0f} req/s)",
                    "ms",
                    load.p99_ms,
                    "its statement's p99 alone (above)",
                    db_p99[read],
                    f"p99 < 2 × {GOAL_MS:.0f} ms",
                    Goal("value", "<", 2 * GOAL_MS),
                )
            )
    finally:
        server.stop()
        stop.set()
        stream.shutdown()
    print(f"  read models: {landed.result()} rollups landed during the API load", file=sys.stderr)
    return results


def run(ctx: BenchContext) -> list[Result]:
    wallets, days = (2_000, 120) if ctx.quick else (50_000, 366)
    url = ctx.database()
    started = time.perf_counter()
    seeded = seed(url, wallets, days, datetime.now(UTC).date(), fill_wallets=200)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        seeded_s = time.perf_counter() - started
        conn.execute(API_SESSION)  # the API's session settings (storage.db)
        results = [
            Result(
                f"read models: seed {wallets:,} wallets x {days} days set-based",
                "s",
                seeded_s,
                "none (informational)",
                seeded_s,
                "informational",
            )
        ]
        reads = _reads(ctx, conn, api_reads(seeded))
        results += reads
        results += _new_day(conn, seeded.last, wallets)
        results += _storage(conn)
    db_p99 = {r.name.removeprefix("read ").split(": p99")[0]: r.value for r in reads}
    results += _api(ctx, url, seeded, db_p99)
    results += _cache(ctx, url, seeded.org)
    return results
