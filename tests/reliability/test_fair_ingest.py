"""Orgs share the Hyperliquid budget fairly: a large org's backfill of thousands of
wallets does not hold back a small org's `sync --wait`.

The exchange is the bottleneck (its weight budget, which the workers' limiter
matches), so the time of a sync is the number of exchange requests served while it
runs. The test counts them from the simulated exchange's own log: the small org's
sync, alone, then while the large org's backfill fills the queue. Its wall-clock
times are recorded as figures beside the counts, not asserted (timing on a loaded
machine proves nothing either way).
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from hlsim.market import Market
from storage import orgs
from tests.cli import run_cli
from tests.factories import address
from tests.reliability.api_support import record
from tests.reliability.support import pipeline_env, processes, start_worker
from tests.simulator import FIXED_NOW_MS, StartSimulator

RPS = 20.0
THREADS = 3
BACKFILL = 2_000
SMALL = 3


def test_a_small_orgs_sync_is_not_held_back_by_a_large_backfill(
    db_url: str, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Guarantee: while a large org's ingests of 2,000 wallets fill the queue, a small
    org's `sync --wait` is served after a bounded number of the large org's requests
    (each worker thread's one place in the limiter's queue and the worker's prefetch),
    not after the backlog."""
    # Every wallet of the small orgs has the same activity, so both syncs ask the same.
    market = Market.generate(
        3, wallets=2 * SMALL, days=1, now_ms=FIXED_NOW_MS, fills_per_day=(100, 100)
    )
    server = start_simulator(market, weight_per_minute=RPS * 20 * 60, weight_capacity=RPS * 20 * 4)
    env = pipeline_env(db_url, server, rps=RPS)
    alone_wallets, contended_wallets = market.wallets[:SMALL], market.wallets[SMALL:]
    backfill = [address(0x7_0000 + i) for i in range(BACKFILL)]  # no history: one request each
    with psycopg.connect(db_url, autocommit=True) as conn:
        ids = {}
        for name, wallets in (
            ("alone", alone_wallets),
            ("contended", contended_wallets),
            ("large", backfill),
        ):
            org = orgs.create_org(conn, name)
            orgs.track_wallets(conn, org.id, wallets)
            ids[name] = str(org.id)
    with processes() as procs:
        procs.append(start_worker(env, tmp_path / "worker.log", threads=THREADS))

        def timed_sync(org: str) -> tuple[float, float]:
            started = time.time()
            result = run_cli("sync", "--org", org, "--wait", env=env, timeout=300)
            assert result.code == 0, (result.out, result.err)
            return started, time.time()

        alone_start, alone_end = timed_sync(ids["alone"])
        queued = run_cli("sync", "--org", ids["large"], env=env, timeout=300)
        assert queued.code == 0, queued.err
        contended_start, contended_end = timed_sync(ids["contended"])
        log = server.state.log.as_json()
        with psycopg.connect(db_url, autocommit=True) as conn:
            alone_queued = queued_at(conn, alone_wallets)
            contended_queued = queued_at(conn, contended_wallets)

    def served(wallets: list[str], since: float) -> list[float]:
        return sorted(float(str(e["at"])) for e in log if e["user"] in wallets and e["at"] >= since)

    alone_times = served(alone_wallets, alone_queued)
    contended_times = served(contended_wallets, contended_queued)
    assert len(alone_times) == len(contended_times) == SMALL  # one page each
    large = set(backfill)
    ahead = [
        e
        for e in log
        if e["user"] in large and contended_queued <= float(str(e["at"])) <= contended_times[-1]
    ]
    large_total = sum(1 for e in log if e["user"] in large)
    # Ahead of the small org's ingests: the worker's prefetch (2 per thread) and one
    # request of each thread already waiting for the limiter; then they take turns.
    bound = 3 * THREADS + SMALL * (THREADS - 1)
    assert len(ahead) <= bound, (len(ahead), bound)
    assert large_total < BACKFILL // 2  # the backfill was still far from done
    alone_s = alone_times[-1] - alone_queued
    contended_s = contended_times[-1] - contended_queued
    record(
        "fair ingest (small org's sync --wait)",
        f"alone: its {SMALL} requests served {alone_s:.2f} s after queueing, sync --wait "
        f"{alone_end - alone_start:.1f} s; during a {BACKFILL}-wallet backfill: "
        f"{contended_s:.2f} s, {len(ahead)} of the large org's requests before its last, "
        f"sync --wait {contended_end - contended_start:.1f} s",
    )


QUEUED_AT = """
SELECT extract(epoch FROM min(created_at)) FROM jobs
WHERE actor = 'ingest_wallet' AND message -> 'args' ->> 0 = ANY(%s)
"""


def queued_at(conn: psycopg.Connection, wallets: list[str]) -> float:
    row = conn.execute(QUEUED_AT, (wallets,)).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0])
