"""Scenario 3 of issue 7: the exchange misbehaves — 429 with and without Retry-After,
500s, timeouts, truncated JSON, malformed, duplicate and out-of-order fills, and fill
pages cut short at random lengths (500-2000) as the real API may answer.

Guarantees: the client backs off and retries (jobs/hl_client.py); a page is stored
with the cursor move it justifies, in one transaction, so the cursor never passes
data that was not stored (jobs/ingest.py); malformed fills are quarantined with a
logged reason and the rest of their page is kept (jobs/hl_parse.py,
storage/fills.py); duplicates are stored once (the (wallet, tid, oid) identity);
and the request rate summed over every worker process stays within HYPERLIQUID_RPS
(jobs/ratelimit.py), measured from the simulated exchange's own request log.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hlsim.faults import ShortPages
from hlsim.market import Market
from hlsim.requestlog import LoggedRequest
from hlsim.server import SimServer
from jobs.errors import HyperliquidUnavailable
from jobs.hl_client import LIGHT, LIGHT_COST, HyperliquidClient
from jobs.ingest import ingest_wallet
from jobs.ratelimit import LocalRateLimiter
from storage import cursor, orgs
from storage.orgs import Wallet
from tests.integration.pipeline.expected import METRICS, expected_rows
from tests.integration.pipeline.support import pipeline, sync, worker
from tests.reliability.support import (
    CHAOS,
    Process,
    assert_every_fill_stored_once,
    assert_every_funding_payment_stored_once,
    assert_every_ledger_update_stored_once,
    intensity,
    job_states,
    live_market,
    pipeline_env,
    processes,
    report,
    start_worker,
    two_orgs_sharing_a_wallet,
)
from tests.simulator import FIXED_NOW_MS, StartSimulator, max_in_window, small_market

FILLS = "userFillsByTime"
DAY_MS = 86_400_000


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def _client(server: SimServer, *, attempts: int = 8) -> HyperliquidClient:
    """Short timeout and backoff, so that a test sees many faults in little time."""
    return HyperliquidClient(
        server.url,
        limiter=LocalRateLimiter(500),
        timeout_s=0.5,
        max_attempts=attempts,
        backoff_s=0.05,
        max_backoff_s=0.4,
    )


def _no_follow_up(conn: psycopg.Connection, wallet: Wallet, days: frozenset[date]) -> None:
    return None


def _stored(conn: psycopg.Connection, wallet_id: int) -> list[tuple[int, int, int]]:
    return [
        (int(r[0]), int(r[1]), int(r[2]))
        for r in conn.execute(
            "SELECT time, tid, oid FROM hl_fills_raw WHERE wallet_id = %s ORDER BY 1, 2, 3",
            (wallet_id,),
        )
    ]


async def test_transport_faults_are_retried_with_backoff_and_honour_retry_after(
    auto: psycopg.Connection, start_simulator: StartSimulator
) -> None:
    """429 with Retry-After, 429 without, 500s, a timeout and truncated JSON, in a row, on
    the same wallet. Proves: every one is retried, Retry-After is waited out, others
    back off, and the ingest ends with every fill stored once."""
    server = start_simulator(small_market(wallets=2))
    address = server.market.wallets[1]
    (wallet,) = orgs.upsert_wallets(auto, [address])
    plans: list[dict[str, Any]] = [
        {"status": 429, "retry_after": 1},
        {"status": 429, "count": 2},
        {"status": 500, "count": 2},
        {"delay_s": 1.5},  # beyond the client's 0.5 s timeout
        {"truncate": True, "count": 2},
    ]
    for plan in plans:
        server.state.faults.add_json({**plan, "type": FILLS, "user": address})
    async with _client(server, attempts=10) as client:
        await ingest_wallet(auto, client, wallet, on_new_days=_no_follow_up)

    log = sorted((e for e in server.state.log.entries() if e.type == FILLS), key=lambda e: e.at)
    statuses = [e.status for e in log]
    # The timed-out request is logged when the simulator answers it, after the retry.
    assert Counter(statuses)[429] == 3 and Counter(statuses)[500] == 2, statuses
    gaps = [b.at - a.at for a, b in itertools.pairwise(log)]
    assert gaps[0] >= 0.95, f"Retry-After 1 was not waited out: {gaps[0]:.3f}s"
    assert all(g >= 0.02 for g in gaps[1:5]), f"no backoff between failures: {gaps}"
    assert _stored(auto, wallet.id) == sorted(
        (f["time"], f["tid"], f["oid"]) for f in server.market.fills(address)
    )
    state = cursor.get_cursor(auto, wallet.id)
    assert state is not None and state.last_error is None
    report("exchange_transport_faults", faults=sum(p.get("count", 1) for p in plans))


async def test_a_pass_that_fails_midway_never_moves_the_cursor_past_stored_fills(
    auto: psycopg.Connection, start_simulator: StartSimulator
) -> None:
    """The first page arrives, then every request fails until retries run out. Proves:
    the cursor stops exactly where the stored fills end (every fill before it is
    stored), the error is recorded, and the next ingest completes without a duplicate."""
    market = Market(5, now_ms=FIXED_NOW_MS)
    address = market.add_wallet(fills_per_day=2_500, since_ms=FIXED_NOW_MS - 2 * DAY_MS)
    server = start_simulator(market, short_pages=ShortPages(5))
    (wallet,) = orgs.upsert_wallets(auto, [address])
    truth = sorted((f["time"], f["tid"], f["oid"]) for f in market.fills(address))
    assert len(truth) > 2 * 2_000, "several pages"
    server.state.faults.add_json({"count": 1, "user": address})  # the first page is answered
    server.state.faults.add_json({"status": 500, "count": 1_000, "user": address})
    async with _client(server, attempts=3) as client:
        with pytest.raises(HyperliquidUnavailable):
            await ingest_wallet(auto, client, wallet, on_new_days=_no_follow_up)
        state = cursor.get_cursor(auto, wallet.id)
        assert state is not None and state.synced_until_ms is not None
        stored = _stored(auto, wallet.id)
        assert 0 < len(stored) < len(truth)
        assert state.last_error is not None and "HTTP 500" in state.last_error
        before_cursor = [f for f in truth if f[0] < state.synced_until_ms]
        assert set(before_cursor) <= set(stored), "the cursor passed fills it did not store"
        assert state.synced_until_ms <= max(f[0] for f in stored)

        server.state.faults.clear()
        await ingest_wallet(auto, client, wallet, on_new_days=_no_follow_up)
    assert _stored(auto, wallet.id) == truth


def _plant_bad_fills(market: Market, address: str) -> set[int]:
    """Malformed, duplicate and out-of-order fills; returns the tids of the malformed ones."""
    fills = market.fills(address)
    old = fills[len(fills) // 3]
    t = old["time"]
    bad: set[int] = set()
    for n, (field, value) in enumerate(
        [("px", None), ("sz", "abc"), ("fee", "1e"), ("time", "yesterday"), ("oid", "x")]
    ):
        raw = {**old, "tid": 9_000_000 + n}
        if value is None:
            del raw[field]
        else:
            raw[field] = value
        market.add_raw(address, t + n, raw)
        bad.add(raw["tid"])
    # Served twice, in one page and next to each other.
    market.add_raw(address, old["time"], dict(old))
    # Served after later fills although it happened an hour before them.
    early = {**fills[len(fills) // 2], "tid": 9_100_000, "time": t - 3_600_000}
    market.add_raw(address, fills[len(fills) // 2]["time"], early)
    return bad


def test_malformed_duplicate_and_out_of_order_fills_through_the_pipeline(
    auto: psycopg.Connection,
    db_url: str,
    start_simulator: StartSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fills with missing or non-numeric fields, a duplicated fill and a fill out of time
    order, through worker, rollups and a second sync. Proves: each malformed fill is
    quarantined once with a logged reason naming its field, the rest of its page is
    stored, duplicates count once, and the metrics equal the independent computation
    over the valid fills."""
    server = start_simulator(small_market(wallets=4), short_pages=ShortPages(4))
    address = server.market.wallets[2]
    bad = _plant_bad_fills(server.market, address)
    members = two_orgs_sharing_a_wallet(auto, server.market.wallets)
    caplog.set_level(logging.WARNING, logger="jobs.hl_client")
    with pipeline(db_url, server) as p, worker(p):
        for _ in range(2):  # the second sync re-reads the overlap: still nothing new
            progress = sync(p, auto)
            assert progress.failed == 0

    def valid(raw: dict[str, Any]) -> bool:
        return raw["tid"] not in bad

    assert_every_fill_stored_once(auto, server, valid=valid)
    assert auto.execute(METRICS).fetchall() == expected_rows(auto, server, members, valid=valid)
    quarantined = auto.execute("SELECT raw->>'tid', reason FROM hl_fills_quarantine").fetchall()
    assert sorted(int(t) for t, _ in quarantined) == sorted(bad)
    reasons = {int(t): r for t, r in quarantined}
    for n, field in enumerate(["px", "sz", "fee", "time", "oid"]):
        assert field in reasons[9_000_000 + n], reasons
    logged = [r for r in caplog.records if getattr(r, "action", None) == "fill_rejected"]
    assert sorted(r.reason for r in logged) == sorted(reasons.values())  # type: ignore[attr-defined]


def _slots(entries: list[LoggedRequest]) -> float:
    """Limiter slots the requests used: one each (a tenth for a light request of weight
    2), plus the weight of large answers, which later slots pay for (so the last answer
    of each wallet and kind is paid after the measured span)."""
    last_of = {(e.user, e.type): e for e in entries if e.status == 200}
    unpaid = sum(max(0, e.weight - 20) for e in last_of.values())
    base = sum(LIGHT_COST if e.type in LIGHT else 1.0 for e in entries)
    return base + (sum(max(0, e.weight - 20) for e in entries) - unpaid) / 20


@pytest.mark.slow
def test_worker_processes_under_faults_keep_the_aggregate_rate(
    db_url: str, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Three `hl-analytics worker` processes sync while the exchange answers 429s (with
    and without Retry-After), 500s, truncated and corrupted bodies, and cuts every fill
    page short at a random length. Proves: the rate
    measured at the exchange, all processes together, stays within HYPERLIQUID_RPS; the
    exchange's own weight budget (set to that rate) never had to refuse a request; and
    the sync ends exact, with the corrupted fills quarantined."""
    rps = 6.0
    scale = intensity(1, 3)
    server = start_simulator(
        live_market(41, wallets=12, days=3, busiest=1_800),
        weight_per_minute=rps * 20 * 60,
        # Hyperliquid's bucket holds a minute; 8 s of it still catches any overshoot
        # beyond what the limiter documents: a large answer's weight is paid after it
        # arrived, so up to one page per busy thread (6 × 100 weight) runs ahead.
        weight_capacity=rps * 20 * 8,
        short_pages=ShortPages(41),
    )
    plans: list[dict[str, Any]] = [
        {"status": 429, "retry_after": 1, "count": 2 * scale},
        {"status": 429, "count": 2 * scale},
        {"status": 500, "count": 3 * scale},
        {"truncate": True, "count": 2 * scale},
        {"malformed": True, "count": scale},
    ]
    if CHAOS:
        plans.append({"delay_s": 11.0})  # beyond the workers' 10 s timeout
    for plan in plans:
        server.state.faults.add_json({**plan, "type": FILLS})
    env = pipeline_env(db_url, server, rps=rps)
    started = time.time()
    with psycopg.connect(db_url, autocommit=True) as conn, processes() as procs:
        members = two_orgs_sharing_a_wallet(conn, server.market.wallets)
        for n in range(3):
            procs.append(start_worker(env, tmp_path / f"worker-{n}.log", threads=2))
        run = Process(["sync", "--wait"], env, tmp_path / "sync.log")
        procs.append(run)
        assert run.proc.wait(timeout=240) == 0, run.output()
        assert not server.state.faults.pending(), "every fault was served"

        quarantined = {
            (int(t), int(o))
            for t, o in conn.execute("SELECT raw->>'tid', raw->>'oid' FROM hl_fills_quarantine")
        }
        assert len(quarantined) == scale, "one corrupted fill per malformed answer"

        def valid(raw: dict[str, Any]) -> bool:
            return (raw["tid"], raw["oid"]) not in quarantined

        assert job_states(conn).get("failed", 0) == 0
        stored = assert_every_fill_stored_once(conn, server, valid=valid)
        assert_every_funding_payment_stored_once(conn, server)
        assert_every_ledger_update_stored_once(conn, server)
        assert conn.execute(METRICS).fetchall() == expected_rows(conn, server, members, valid=valid)
        for w in procs[:3]:
            assert w.terminate() == 0, w.output()

    entries = sorted(server.state.log.entries(started), key=lambda e: e.at)
    span = entries[-1].at - entries[0].at
    slots = _slots(entries)
    # Light requests take a tenth of a slot each: the peak counts the full-slot ones.
    peak = max_in_window([e.at for e in entries if e.type not in LIGHT], 1.0)
    statuses = Counter(e.status for e in entries)
    injected_429 = 4 * scale
    assert slots <= rps * span + 2, f"{slots:.1f} slots in {span:.1f}s exceeds {rps}/s"
    assert peak <= rps + 2, f"{peak} requests in one second"
    assert statuses[429] == injected_429, f"the exchange's budget refused requests: {statuses}"
    assert slots >= 0.5 * rps * span, "the limiter throttled far below the configured rate"
    report(
        "exchange_faults_rate",
        worker_processes=3,
        configured_rps=rps,
        requests=len(entries),
        measured_slots_per_s=round(slots / span, 2),
        peak_requests_in_1s=peak,
        span_s=round(span, 1),
        statuses={str(k): v for k, v in statuses.items()},
        faults_injected=sum(int(p.get("count", 1)) for p in plans),
        quarantined=len(quarantined),
        fills=stored,
        # answers of 500-1999 fills (weight 20 + 1 per 20 fills): pages cut short
        short_pages=sum(1 for e in entries if e.status == 200 and 45 <= e.weight < 120),
    )
