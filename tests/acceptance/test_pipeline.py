"""The pipeline as a user runs it: `hl-analytics worker` processes, `wallets track`,
`sync --wait`, against the simulated exchange over real HTTP.

The numbers are checked against an independent computation from the exchange's
ground truth (tests/integration/pipeline/expected.py), after crashes too.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hlsim.market import Market
from hlsim.server import SimServer, wall_ms
from storage import orgs
from tests.cli import HL_ANALYTICS, run_cli
from tests.integration.pipeline.expected import METRICS, expected_rows
from tests.simulator import StartSimulator, start_simulator
from tests.waiting import wait_until

__all__ = ["start_simulator"]

pytestmark = pytest.mark.slow
MINUTE = 60_000
LEASE_S = 2


class Worker:
    """`hl-analytics worker` in its own process group, logging to a file."""

    OPTIONS = ("--lease", str(LEASE_S), "--shutdown-timeout", "10")

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [HL_ANALYTICS, "worker", "--processes", "1", "--threads", "4", *self.OPTIONS],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the worker ignored SIGTERM; log:\n{self.log.read_text()}"
            ) from None


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.kill()


def live_market(seed: int = 11) -> Market:
    """Wallets with three days of history up to now (a busy one spans several pages)."""
    now = wall_ms()
    return Market.generate(seed, wallets=4, days=3, now_ms=now, fills_per_day=(30, 2_000))


def env_for(db_url: str, server: SimServer) -> dict[str, str]:
    return {"DATABASE_URL": db_url, "HYPERLIQUID_API_URL": server.url, "HYPERLIQUID_RPS": "500"}


def create_orgs(env: dict[str, str], wallets: list[str]) -> dict[str, list[str]]:
    """Two organisations sharing a wallet, tracked through the command line."""
    members: dict[str, list[str]] = {}
    for name, tracked in (("A", wallets[:3]), ("B", wallets[2:])):
        created = run_cli("orgs", "create", name, env=env)
        assert created.code == 0, created.err
        org_id = created.out.strip()
        done = run_cli("wallets", "track", "--org", org_id, *tracked, env=env)
        assert done.code == 0, done.err
        members[org_id] = tracked
    return members


def unfinished(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()
    return int(row[0]) if row else -1


def test_sigkilled_worker_mid_ingest_then_restarted_ends_with_exact_numbers(
    db_url: str, start_simulator: StartSimulator, workers: list[Worker], tmp_path: Path
) -> None:
    server = start_simulator(live_market())
    env = env_for(db_url, server)
    wallets = server.market.wallets
    busy = max(wallets, key=lambda a: len(server.market.fills(a)))
    assert len(server.market.fills(busy)) > 2 * 2_000, "the busy wallet must span pages"
    # Every page of the busy wallet answers slowly, so the kill lands between pages.
    server.state.faults.add_json(
        {"delay_s": 1.0, "count": 1_000, "user": busy, "type": "userFillsByTime"}
    )
    members = create_orgs(env, wallets)

    with psycopg.connect(db_url, autocommit=True) as conn:
        busy_id = orgs.upsert_wallets(conn, [busy])[0].id

        def stored() -> int:
            row = conn.execute(
                "SELECT count(*) FROM hl_fills_raw WHERE wallet_id = %s", (busy_id,)
            ).fetchone()
            return int(row[0]) if row else 0

        workers.append(Worker(env, tmp_path / "worker-1.log"))
        wait_until(lambda: stored() > 0, 60, "the first page of the busy wallet")
        workers[0].kill()
        partial = stored()
        assert 0 < partial < len(server.market.fills(busy)), "killed mid-ingest"
        running = conn.execute(
            "SELECT count(*) FROM jobs WHERE actor = 'ingest_wallet' AND state = 'running'"
        ).fetchone()
        assert running is not None and running[0] >= 1, "the killed ingest holds its lease"

        server.state.faults.clear()
        workers.append(Worker(env, tmp_path / "worker-2.log"))
        wait_until(lambda: unfinished(conn) == 0, 90, "the re-delivered jobs")
        assert conn.execute(METRICS).fetchall() == expected_rows(conn, server, members)
        failed = conn.execute("SELECT count(*) FROM jobs WHERE state = 'failed'").fetchone()
        assert failed == (0,)

        # A whole second sync finds nothing new and changes nothing.
        before = conn.execute(METRICS).fetchall()
        again = run_cli("sync", "--wait", env=env, timeout=120)
        assert again.code == 0, again.err
        assert "sync finished" in again.out and "wallets 4/4" in again.out
        assert conn.execute(METRICS).fetchall() == before
    assert workers[1].terminate() == 0, (tmp_path / "worker-2.log").read_text()


def test_late_fills_inside_the_overlap_are_picked_up_by_the_next_sync(
    db_url: str, start_simulator: StartSimulator, workers: list[Worker], tmp_path: Path
) -> None:
    server = start_simulator(live_market(seed=12))
    env = env_for(db_url, server)
    members = create_orgs(env, server.market.wallets)
    workers.append(Worker(env, tmp_path / "worker.log"))
    first = run_cli("sync", "--wait", env=env, timeout=120)
    assert first.code == 0, first.err

    with psycopg.connect(db_url, autocommit=True) as conn:
        synced = conn.execute("SELECT min(synced_until_ms) FROM hl_ingest_cursor").fetchone()
        assert synced is not None and synced[0] is not None
        shared = server.market.wallets[2]  # tracked by both organisations
        server.market.add_fill(shared, synced[0] - 5 * MINUTE, coin="@1", tid=777_001)
        server.market.add_fill(shared, synced[0] - 2 * MINUTE, coin="ETH", tid=777_002)

        second = run_cli("sync", "--wait", env=env, timeout=120)
        assert second.code == 0, second.err
        stored = conn.execute(
            "SELECT count(*) FROM hl_fills_raw WHERE tid IN (777001, 777002)"
        ).fetchone()
        assert stored == (2,)
        assert conn.execute(METRICS).fetchall() == expected_rows(conn, server, members)
    assert workers[0].terminate() == 0


def test_inline_sync_without_workers_and_a_failed_job_exits_non_zero(
    db_url: str, start_simulator: StartSimulator
) -> None:
    server = start_simulator(live_market(seed=13))
    env = env_for(db_url, server)
    members = create_orgs(env, server.market.wallets)
    ok = run_cli("sync", "--inline", env=env, timeout=120)
    assert ok.code == 0, ok.err
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(METRICS).fetchall() == expected_rows(conn, server, members)

    # Hyperliquid refuses one wallet: its jobs fail at once and the sync says so (one of
    # each kind: fills, funding, ledger updates and the account snapshot).
    refused = server.market.wallets[0]
    server.state.faults.add_json({"status": 422, "count": 1_000, "user": refused})
    failed = run_cli("sync", "--inline", env=env, timeout=120)
    assert failed.code == 1
    assert "4 job(s) of this sync failed" in failed.err and refused in failed.err


def test_scheduler_queues_due_wallets_once_across_runs(
    db_url: str, start_simulator: StartSimulator
) -> None:
    server = start_simulator(live_market(seed=14))
    env = env_for(db_url, server)
    create_orgs(env, server.market.wallets)
    first = run_cli("scheduler", "--once", env=env)
    assert first.code == 0, first.err
    assert "queued ingest of 4 of 4 tracked wallet(s)" in first.err
    second = run_cli("scheduler", "--once", env=env)
    assert second.code == 0, second.err
    assert "queued ingest" not in second.err, "nothing is due again so soon"
    with psycopg.connect(db_url, autocommit=True) as conn:
        # `wallets track` had queued them already: the scheduler's sends merged into those.
        queued = conn.execute(
            "SELECT count(*), count(DISTINCT dedup_key) FROM jobs"
            " WHERE actor = 'ingest_wallet' AND state = 'queued'"
        ).fetchone()
        assert queued == (4, 4)
        scheduled = conn.execute(
            "SELECT count(*) FROM hl_ingest_cursor WHERE last_scheduled_at IS NOT NULL"
        ).fetchone()
        assert scheduled == (4,)


def test_bad_pipeline_arguments_are_one_line_errors(db_url: str) -> None:
    env = {"DATABASE_URL": db_url}
    worker = run_cli("worker", "--processes", "0", env=env)
    assert (worker.code, worker.err.strip()) == (
        1,
        "hl-analytics: error: --processes must be above 0 (got 0)",
    )
    scheduler = run_cli("scheduler", "--interval", "-1", env=env)
    assert scheduler.code == 1 and "--interval must be above 0" in scheduler.err
    unknown = run_cli("sync", "--org", "not-an-org", env=env)
    assert unknown.code == 1 and "is not an organisation id" in unknown.err
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
