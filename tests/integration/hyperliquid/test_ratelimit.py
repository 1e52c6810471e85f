"""The shared rate limiter: several worker processes together hold the configured rate.

The rate is measured from the simulated exchange's own request log, not from
the limiter. The exchange's weight budget is set to exactly the limiter's rate
(20 weight per slot), so any overshoot would also show up as 429s.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hlsim.market import Market
from hlsim.requestlog import LoggedRequest
from jobs.errors import RateLimiterUnavailable
from jobs.hl_client import HyperliquidClient
from jobs.ratelimit import LocalRateLimiter, PostgresRateLimiter, RedisRateLimiter
from tests.dbs import TestDatabases
from tests.simulator import FIXED_NOW_MS, StartSimulator, max_in_window

ROOT = Path(__file__).resolve().parents[3]
REDIS_URL = "redis://127.0.0.1:6379/15"
PROCESSES = 3
RPS = 12.0
SECONDS = 4.0
# Slots are exact in the shared schedule; arrivals at the exchange are each late by
# scheduling and network latency, which on a loaded 2-core machine reaches a few
# hundred ms and can bunch them. The bounds allow this much of it.
LATENCY_S = 0.5
pytestmark = pytest.mark.slow


def _market() -> tuple[Market, list[list[str]]]:
    """Per process: one busy wallet (several full pages a pass) and three quiet ones."""
    market = Market(11, now_ms=FIXED_NOW_MS)
    since = FIXED_NOW_MS - 86_400_000
    groups = []
    for _ in range(PROCESSES):
        busy = market.add_wallet(fills_per_day=4_500, since_ms=since)
        quiet = [market.add_wallet(fills_per_day=8, since_ms=since) for _ in range(3)]
        groups.append([busy, *quiet])
    return market, groups


def _run_workers(url: str, store: list[str], groups: list[list[str]]) -> list[dict[str, int]]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.hyperliquid.hammer",
                "--url",
                url,
                *store,
                "--rps",
                str(RPS),
                "--name",
                name,
                "--seconds",
                str(SECONDS),
                "--end-ms",
                str(FIXED_NOW_MS),
                *wallets,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for wallets in groups
    ]
    for proc in procs:  # every process has imported its modules
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    start_at = time.time() + 0.3
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start_at}\n")
        proc.stdin.close()
        proc.stdin = None  # written and closed: communicate() must not touch it
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _check(entries: list[LoggedRequest], groups: list[list[str]]) -> None:
    assert entries, "the workers sent nothing"
    entries = sorted(entries, key=lambda e: e.at)
    span = entries[-1].at - entries[0].at
    # A slot is one 20-weight request. The item weight of an answer is paid by later
    # slots, so each wallet's last answer pays for time after the measured span.
    last_of = {e.user: e for e in entries}
    unpaid = sum(e.weight - 20 for e in last_of.values())
    slots = (sum(e.weight for e in entries) - unpaid) / 20
    allowed = RPS * (span + LATENCY_S) + 2
    assert slots <= allowed, f"{slots:.1f} slots in {span:.2f}s exceeds {RPS}/s"
    assert max_in_window([e.at for e in entries], 1.0) <= RPS * (1 + LATENCY_S) + 2
    assert slots >= 0.6 * RPS * SECONDS, "the limiter throttled far below the configured rate"
    per_wallet = Counter(e.user for e in entries)
    every = [w for group in groups for w in group]
    assert set(per_wallet) == set(every), "a wallet was never served"
    assert min(per_wallet.values()) >= 0.4 * max(per_wallet.values()), per_wallet
    assert all(e.status == 200 for e in entries), Counter(e.status for e in entries)


def test_worker_processes_share_one_rate_through_postgres(
    start_simulator: StartSimulator, db_url: str
) -> None:
    market, groups = _market()
    server = start_simulator(market, weight_per_minute=RPS * 20 * 60, weight_capacity=RPS * 20 * 2)
    results = _run_workers(server.url, ["--database", db_url], groups)
    assert all(sum(r.values()) > 0 for r in results), results
    _check(server.state.log.entries(), groups)


def test_worker_processes_share_one_rate_through_redis(start_simulator: StartSimulator) -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    market, groups = _market()
    server = start_simulator(market, weight_per_minute=RPS * 20 * 60, weight_capacity=RPS * 20 * 2)
    _run_workers(server.url, ["--redis", REDIS_URL], groups)
    _check(server.state.log.entries(), groups)


def test_per_process_limiters_would_break_the_rate(start_simulator: StartSimulator) -> None:
    """The measurement above catches a limiter that only counts its own process."""
    market, groups = _market()
    server = start_simulator(market)
    _run_workers(server.url, ["--local"], groups)
    with pytest.raises(AssertionError, match="exceeds"):
        _check(server.state.log.entries(), groups)


async def test_slots_are_spaced_by_the_rate_in_one_process() -> None:
    limiter = LocalRateLimiter(50)
    started = time.monotonic()
    for _ in range(11):
        await limiter.acquire("w")
    # Never faster than the rate; the upper bound only catches a limiter that sleeps
    # far too long, with room for a loaded machine.
    assert 0.19 <= time.monotonic() - started < 1.5


async def test_the_postgres_schedule_hands_out_consecutive_slots(db_url: str) -> None:
    limiter = PostgresRateLimiter(db_url, 20, name="consecutive")
    started = time.monotonic()
    for _ in range(6):
        await limiter.acquire("w")
    await limiter.charge(4)  # four more slots' worth of weight: 0.2 s
    await limiter.acquire("w")
    await limiter.pause(0.3)
    await limiter.acquire("w")
    elapsed = time.monotonic() - started
    await limiter.aclose()
    assert 0.25 + 0.2 + 0.3 - 0.05 <= elapsed < 3.0


async def test_an_unmigrated_database_is_a_clear_error(dbs: TestDatabases) -> None:
    url = dbs.fresh(migrated=False)
    limiter = PostgresRateLimiter(url, 5)
    try:
        with pytest.raises(RateLimiterUnavailable, match="hl-analytics migrate"):
            await limiter.acquire("w")
    finally:
        await limiter.aclose()
        dbs.drop(url)


async def test_an_unreachable_store_is_a_clear_error() -> None:
    pg = PostgresRateLimiter("postgresql://postgres@127.0.0.1:9/none", 5)
    with pytest.raises(RateLimiterUnavailable, match="check DATABASE_URL"):
        await pg.acquire("w")
    rd = RedisRateLimiter("redis://127.0.0.1:9/0", 5)
    with pytest.raises(RateLimiterUnavailable, match="check REDIS_URL"):
        await rd.acquire("w")
    await rd.aclose()


class _GrantRecorder(PostgresRateLimiter):
    """The shared schedule, noting for each slot its wallet, when it starts and when it
    was reserved."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.granted: list[tuple[float, str, float]] = []

    def _reserve_noted(self, cost_s: float) -> tuple[float, float]:
        wait = self._reserve(cost_s)
        return wait, time.monotonic()

    async def acquire(self, key: str, cost: float = 1.0) -> None:
        wait, reserved = await asyncio.to_thread(self._reserve_noted, cost / self.rps)
        self.granted.append((reserved + max(wait, 0.0), key, reserved))
        if wait > 0:
            await asyncio.sleep(wait)


async def test_a_huge_wallet_does_not_starve_small_ones(
    start_simulator: StartSimulator, db_url: str
) -> None:
    market = Market(12, now_ms=FIXED_NOW_MS)
    huge = market.add_wallet(fills_per_day=9_000, since_ms=FIXED_NOW_MS - 86_400_000)
    small = [
        market.add_wallet(fills_per_day=30, since_ms=FIXED_NOW_MS - 86_400_000) for _ in range(4)
    ]
    server = start_simulator(market)
    finished: list[str] = []
    limiter = _GrantRecorder(db_url, 40, name="fairness")

    async with HyperliquidClient(server.url, limiter=limiter) as client:

        async def one_pass(address: str) -> None:
            async for _ in client.fill_pages(address, 0, FIXED_NOW_MS):
                pass
            finished.append(address)

        await asyncio.gather(one_pass(huge), *(one_pass(w) for w in small))
    await limiter.aclose()

    assert finished[-1] == huge
    huge_slots = [slot for slot, key, _ in limiter.granted if key == huge]
    assert len(huge_slots) >= 4, "the huge wallet needs several pages"
    # The schedule is first come, first served, and the huge wallet asks for one page at
    # a time: while a small wallet waits for its slot, at most the one slot the huge
    # wallet had already reserved comes first, however late a loaded machine lets the
    # small wallet ask (by the schedule's slots, not by arrival at the exchange).
    for slot, key, reserved in limiter.granted:
        if key != huge:
            assert sum(reserved < s < slot for s in huge_slots) <= 1, limiter.granted
