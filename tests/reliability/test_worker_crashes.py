"""Scenario 1 of issue 7: worker processes SIGKILLed during ingest and rollups.

Guarantee: however often a worker dies mid-job, the sync ends with every fill of
the exchange stored exactly once, metrics equal to an independent computation
(tests/integration/pipeline/expected.py), and no job left queued, running or
failed. Mechanism: leases re-deliver a dead worker's jobs (jobs/broker.py), each
page of ingest commits its fills with its cursor move and its pending wallet-days
(jobs/ingest.py, jobs/actors.py), and rollups take pending wallet-days and rebuild
whole rows from raw fills in one transaction (storage/rollups.py).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import pytest

from hlsim.server import SimServer
from storage import orgs
from tests.integration.pipeline.expected import METRICS, expected_rows
from tests.reliability.support import (
    Process,
    assert_every_fill_stored_once,
    assert_every_funding_payment_stored_once,
    assert_every_ledger_update_stored_once,
    assert_every_snapshot_current,
    intensity,
    job_states,
    live_market,
    pipeline_env,
    processes,
    recovered_jobs,
    report,
    start_worker,
    two_orgs_sharing_a_wallet,
)
from tests.simulator import StartSimulator
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
MINUTE = 60_000
LEASE_S = 2.0
RUNNING_OF = "SELECT id, actor, lease_owner FROM jobs WHERE state = 'running' AND actor LIKE %s"
RUNNING_OWNERS = "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'running'"
OWNED_BY = "SELECT actor FROM jobs WHERE state = 'running' AND lease_owner = %s"
BLOCKED_BACKEND = (
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'hl-analytics-worker'"
    " AND wait_event_type = 'Lock' AND query LIKE %s"
)
BACKEND_ALIVE = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"


def _pids(p: Process) -> set[int]:
    try:
        parent = psutil.Process(p.proc.pid)
        return {parent.pid, *(c.pid for c in parent.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def _owner_pid(lease_owner: str) -> int:
    return int(lease_owner.split(":")[1])  # host:pid:nonce (jobs/broker.py)


def _plant_late_fills(server: SimServer, conn: psycopg.Connection, rng: random.Random) -> None:
    """Fills reported late, inside the overlap: the next sync must ingest and roll them up."""
    synced = conn.execute("SELECT min(synced_until_ms) FROM hl_ingest_cursor").fetchone()
    at = (synced[0] if synced and synced[0] else server.market.now_ms) - 3 * MINUTE
    for address in rng.sample(server.market.wallets, 2):
        server.market.add_fill(address, at + rng.randrange(MINUTE), coin=rng.choice(["ETH", "@1"]))


def _unfinished(conn: psycopg.Connection) -> int:
    states = job_states(conn)
    return states.get("queued", 0) + states.get("running", 0)


@dataclass(frozen=True)
class Kill:
    round: int
    aimed_at: str  # the actor family the victim had just claimed: ingest or rollup
    held: list[str]  # actors of the jobs the killed worker held (claimed or running)


def _kill_one_claiming(
    conn: psycopg.Connection,
    workers: list[Process],
    target: str,
    sync: Process,
    rng: random.Random,
) -> tuple[Process, list[str]] | None:
    """SIGKILLs the worker that just claimed a job of `target` (an actor LIKE pattern),
    returning it and the actors of the jobs it held; None if the sync ended first."""
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and sync.alive and time.monotonic() < deadline:
        running = conn.execute(RUNNING_OF, (target,)).fetchall()
        if running:
            pid = _owner_pid(running[0][2])
            victim = next((w for w in workers if pid in _pids(w)), None)
        # Rollups take milliseconds: poll fast to catch one.
        time.sleep(0.005 if target == "rollup%" else 0.05)
    if victim is None:
        return None
    if target == "ingest%":
        time.sleep(rng.uniform(0, 0.3))  # anywhere in the request or between pages
    owners = [r[0] for r in conn.execute(RUNNING_OWNERS)]
    mine = [o for o in owners if _owner_pid(o) in _pids(victim)]
    victim.kill()
    return victim, [r[0] for o in mine for r in conn.execute(OWNED_BY, (o,))]


def test_random_sigkills_while_sync_runs_end_with_exact_numbers_and_no_stuck_job(
    db_url: str, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Workers SIGKILLed again and again while `sync --wait` runs, each time right after
    it claimed an ingest or a rollup; restarted at once. Proves: no fill lost or stored
    twice, exact metrics, every interrupted job re-delivered, no job stuck or failed."""
    rounds = intensity(4, 14)
    rng = random.Random(7)
    server = start_simulator(live_market(21, wallets=6, days=3, busiest=2_000))
    # Every page answers a little late: ingests stay running long enough to be hit.
    server.state.faults.add_json({"delay_s": 0.4, "count": 1_000_000, "type": "userFillsByTime"})
    env = pipeline_env(db_url, server)
    kills: list[Kill] = []
    started = time.monotonic()
    with psycopg.connect(db_url, autocommit=True) as conn, processes() as procs:
        members = two_orgs_sharing_a_wallet(conn, server.market.wallets)
        workers = [start_worker(env, tmp_path / f"worker-{i}.log", lease_s=LEASE_S) for i in (0, 1)]
        procs.extend(workers)
        for round_ in range(rounds):
            if round_:
                _plant_late_fills(server, conn, rng)
            sync = Process(["sync", "--wait"], env, tmp_path / f"sync-{round_}.log")
            procs.append(sync)
            target = "ingest%" if round_ % 2 == 0 else "rollup%"
            killed = _kill_one_claiming(conn, workers, target, sync, rng)
            if killed is not None:
                victim, held = killed
                kills.append(Kill(round_, target[:-1], held))
                replacement = start_worker(env, tmp_path / f"worker-r{round_}.log", lease_s=LEASE_S)
                workers[workers.index(victim)] = replacement
                procs.append(replacement)
            assert sync.proc.wait(timeout=180) == 0, sync.output()

        wait_until(lambda: _unfinished(conn) == 0, 60, "every job to finish")
        states = job_states(conn)
        assert states.get("failed", 0) == 0, states
        stored = assert_every_fill_stored_once(conn, server)
        assert_every_funding_payment_stored_once(conn, server)
        assert_every_ledger_update_stored_once(conn, server)
        assert_every_snapshot_current(conn, server)
        assert conn.execute(METRICS).fetchall() == expected_rows(conn, server, members)
        recovered = recovered_jobs(conn)
        for w in workers:
            assert w.terminate() == 0, w.output()

    assert len(kills) >= rounds // 2, f"too few kills landed mid-job: {kills}"
    # A rollup often commits before the kill lands: the exact-point test below covers it.
    assert all(k.held for k in kills if k.aimed_at == "ingest"), "a kill interrupted nothing"
    assert sum(recovered.values()) >= 1, "killed jobs were re-delivered through their lease"
    report(
        "worker_crashes",
        rounds=rounds,
        sigkills=len(kills),
        kills_aimed_at_ingest=sum(1 for k in kills if k.aimed_at == "ingest"),
        kills_aimed_at_rollup=sum(1 for k in kills if k.aimed_at == "rollup"),
        jobs_held_by_killed_workers=dict(Counter(a for k in kills for a in k.held)),
        jobs_recovered_by_lease=recovered,
        fills=stored,
        seconds=round(time.monotonic() - started, 1),
    )


def _kill_while_blocked(
    conn: psycopg.Connection,
    worker: Process,
    lock_sql: str,
    params: tuple[object, ...],
    statement_like: str,
    queue: Callable[[], None],
) -> None:
    """Holds a row lock that a statement of the job `queue()` sends will need, so SIGKILL
    lands inside the worker's open transaction; then lets the orphaned backend die."""
    with psycopg.connect(conn.info.dsn, autocommit=True) as holder:
        with holder.transaction():
            assert holder.execute(lock_sql, params).fetchone() is not None
            queue()
            wait_until(
                lambda: conn.execute(BLOCKED_BACKEND, (statement_like,)).fetchone() is not None,
                60,
                f"a worker blocked on {statement_like!r}",
            )
            row = conn.execute(BLOCKED_BACKEND, (statement_like,)).fetchone()
            assert row is not None
            backend = row[0]
            worker.kill()
        # The lock is released: the orphaned backend runs on, finds its client gone
        # before any COMMIT arrived, and rolls back.
        wait_until(
            lambda: conn.execute(BACKEND_ALIVE, (backend,)).fetchone() is None,
            30,
            "the killed worker's backend to end",
        )


def test_sigkill_inside_a_page_transaction_and_inside_rollup_transactions(
    db_url: str, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """The worker is killed at the worst points: after a page's fills were inserted but
    before its cursor moved (same transaction), in the middle of a `rollup_wallet_days`
    job (after it took the day's pending rows, inside the rebuild) and of an org-day
    rebuild. Proves: the killed transaction leaves nothing behind (no fill, no cursor
    move, no half-written metrics, no pending row lost), and the re-delivered job
    completes it."""
    server = start_simulator(live_market(22, wallets=4, days=2, busiest=800))
    env = pipeline_env(db_url, server)
    with psycopg.connect(db_url, autocommit=True) as conn, processes() as procs:
        members = two_orgs_sharing_a_wallet(conn, server.market.wallets)
        shared = members[next(iter(members))][-1]  # tracked by both orgs
        wallet_id = orgs.upsert_wallets(conn, [shared])[0].id
        procs.append(start_worker(env, tmp_path / "worker-0.log", lease_s=LEASE_S))
        first = Process(["sync", "--wait"], env, tmp_path / "sync-0.log")
        assert first.proc.wait(timeout=120) == 0, first.output()

        def synced() -> tuple[int, int]:
            row = conn.execute(
                "SELECT synced_until_ms, fills_stored FROM hl_ingest_cursor WHERE wallet_id = %s",
                (wallet_id,),
            ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        org_a = uuid.UUID(next(iter(members)))

        def org_a_metrics() -> list[tuple[object, ...]]:
            return [r for r in conn.execute(METRICS).fetchall() if r[0] == org_a]

        checks = [
            (
                "SELECT 1 FROM hl_ingest_cursor WHERE wallet_id = %s FOR UPDATE",
                (wallet_id,),
                "%INSERT INTO hl_ingest_cursor%",
            ),
            (
                "SELECT 1 FROM wallet_day_metrics WHERE wallet_id = %s AND day = %s FOR UPDATE",
                (wallet_id, None),
                "%INSERT INTO wallet_day_metrics%",
            ),
            (
                "SELECT 1 FROM global_day_metrics WHERE org_id = %s AND day = %s FOR UPDATE",
                (org_a, None),
                "%INSERT INTO global_day_metrics%",
            ),
        ]
        for n, (lock_sql, params, statement) in enumerate(checks, start=1):
            cursor_before, metrics_before = synced(), org_a_metrics()
            planted = server.market.add_fill(shared, cursor_before[0] - 2 * MINUTE)
            day = datetime.fromtimestamp(int(planted["time"]) / 1000, UTC).date()
            args = tuple(day if p is None else p for p in params)

            def queue() -> None:
                queued = Process(["sync"], env, tmp_path / f"sync-{n}.log")  # noqa: B023
                assert queued.proc.wait(timeout=60) == 0, queued.output()

            _kill_while_blocked(conn, procs[-1], lock_sql, args, statement, queue)
            if n == 1:
                # The page's insert and its cursor move died together.
                assert synced() == cursor_before
                stored = conn.execute(
                    "SELECT count(*) FROM hl_fills_raw WHERE tid = %s", (planted["tid"],)
                ).fetchone()
                assert stored == (0,), "a fill of the killed page transaction was committed"
            else:
                # The fill is in, but the killed rebuild left the org's numbers as they were.
                assert org_a_metrics() == metrics_before
            if n == 2:
                # The killed job had taken the wallet-day: its deletion rolled back.
                pending = conn.execute(
                    "SELECT 1 FROM rollup_pending WHERE wallet_id = %s AND day = %s",
                    (wallet_id, day),
                ).fetchone()
                assert pending is not None, "the killed rollup lost its pending wallet-day"
            procs.append(start_worker(env, tmp_path / f"worker-{n}.log", lease_s=LEASE_S))
            wait_until(lambda: _unfinished(conn) == 0, 60, "the re-delivered jobs")
            assert conn.execute(METRICS).fetchall() == expected_rows(conn, server, members)

        assert_every_fill_stored_once(conn, server)
        assert job_states(conn).get("failed", 0) == 0
        assert procs[-1].terminate() == 0, procs[-1].output()
        recovered = recovered_jobs(conn)
    assert sum(recovered.values()) >= len(checks), recovered
    report("worker_crash_points", sigkills=len(checks), jobs_recovered_by_lease=recovered)
