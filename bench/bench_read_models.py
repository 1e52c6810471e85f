"""Dashboard reads at 50,000 wallets and 366 days (QUICK: 2,000 wallets, 120 days).

The org is seeded set-based (bench/read_seed.py). Figures, side by side:

- every read statement of the API (bench/read_seed.py's list: each field, each
  ordering of topWallets, 366/90/7-day ranges ending on the last day), uncached
  (no response cache: the statement itself), p50 and p99 of its round trip on a
  local connection, against the goal of < 50 ms p99; the baseline is the same
  field's statement on today's tables (the range summed from the wallet-days, as
  before the read models; a statement the read models did not change is its own
  baseline, measured once);
- the response cache's hit ratio under a simulated rollup stream: the API's
  listener and cache (in memory) while the org's today is notified every second
  (and an old day every fifth), and 40 dashboards' documents ask for D7/D30/D90
  ranges ending today and last month's; against the same requests with every notification
  invalidating the whole org at once (what the cache did before);
- storage of the read models per wallet-day, against the wallet-day tables'.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg

from bench.common import BenchContext, Goal, Result
from bench.read_seed import Read, api_reads, seed
from graph.cache import Answer, ResponseCache
from graph.listener import ChangeListener
from storage import changes, dashboard

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
        key = re.sub(r"\bt\.(\w+)", r"sum(m.\1)", dashboard.ORDERS[kind[1]])
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


def _storage(conn: psycopg.Connection) -> list[Result]:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM wallet_day_metrics),
                  pg_total_relation_size('wallet_running_totals')
                  + pg_total_relation_size('wallet_coin_running_totals')
                  + pg_total_relation_size('wallet_coins'),
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


def run(ctx: BenchContext) -> list[Result]:
    wallets, days = (2_000, 120) if ctx.quick else (50_000, 366)
    url = ctx.database()
    started = time.perf_counter()
    seeded = seed(url, wallets, days, datetime.now(UTC).date(), fill_wallets=200)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        seeded_s = time.perf_counter() - started
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
        results += _reads(ctx, conn, api_reads(seeded))
        results += _storage(conn)
    results += _cache(ctx, url, seeded.org)
    return results
