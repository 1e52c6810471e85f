"""The pipeline end to end in-process: exchange → ingest → wallet-days → org-days."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from hlsim.server import SimServer
from jobs import scheduler
from jobs import sync as sync_module
from jobs.pipeline import Pipeline
from jobs.tracking import track_wallets, untrack_wallet
from storage import locks, orgs
from tests.integration.pipeline.expected import Expected, assert_org_days
from tests.integration.pipeline.support import expected_of, pipeline, sync, worker
from tests.integration.storage.test_ranks import _check as ranks_check
from tests.simulator import StartSimulator, small_market

METRICS = (
    "SELECT org_id, day, dau, trade_count, spot_volume_usd, perp_volume_usd, total_volume_usd,"
    " fees_usd, realized_pnl_usd, avg_volume_per_user FROM global_day_metrics ORDER BY 1, 2"
)
WALLET_METRICS = (
    "SELECT wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd, fees_usd,"
    " realized_pnl_usd FROM wallet_day_metrics ORDER BY 1, 2"
)


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def track(p: Pipeline, conn: psycopg.Connection, org: uuid.UUID, addresses: list[str]) -> None:
    with conn.transaction():
        track_wallets(
            conn,
            org,
            addresses,
            max_wallets=p.settings.hl_analytics_max_wallets_per_org,
            pipeline=p,
        )


def untrack(p: Pipeline, conn: psycopg.Connection, org: uuid.UUID, address: str) -> None:
    with conn.transaction():
        wallet = untrack_wallet(conn, org, address, pipeline=p)
        assert wallet is not None


def assert_org_matches(
    conn: psycopg.Connection, org: uuid.UUID, expected: Expected, members: list[str]
) -> None:
    ids = [w.id for w in orgs.upsert_wallets(conn, members)]
    assert_org_days(conn, org, expected.org_days(ids))


def wait_idle(p: Pipeline) -> None:
    # Ingests queue their rollups in their own transactions, and rollups queue nothing
    # on the ingest queue: once ingest is idle, every rollup to come is already queued.
    p.broker.join("ingest", timeout=60_000)
    p.broker.join("rollups", timeout=60_000)


def test_orgs_sharing_wallets_get_exact_numbers_and_a_second_sync_changes_nothing(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    server = start_simulator(small_market(wallets=5, days=3))
    wallets = server.market.wallets
    a, b, c = (orgs.create_org(auto, name).id for name in "ABC")
    members = {a: wallets[:3], b: wallets[2:], c: [wallets[1], wallets[3]]}
    with pipeline(db_url, server) as p:
        for org, addresses in members.items():
            track(p, auto, org, addresses)
        with worker(p):
            wait_idle(p)
            expected = expected_of(auto, server)
            for org, addresses in members.items():
                assert_org_matches(auto, org, expected, addresses)
            first = auto.execute(METRICS).fetchall()
            first_wallets = auto.execute(WALLET_METRICS).fetchall()

            progress = sync(p, auto)
            assert progress.failed == 0 and progress.done >= len(wallets)
            assert auto.execute(METRICS).fetchall() == first
            assert auto.execute(WALLET_METRICS).fetchall() == first_wallets
    assert len(expected.wallet_days) > 5, "several wallet-days, or the test proves little"


def test_tracking_and_untracking_recompute_the_org_days(
    auto: psycopg.Connection, db_url: str, simulator: SimServer
) -> None:
    wallets = simulator.market.wallets
    a, b = orgs.create_org(auto, "A").id, orgs.create_org(auto, "B").id
    with pipeline(db_url, simulator) as p, worker(p):
        track(p, auto, a, wallets[:3])
        track(p, auto, b, wallets[:1])
        wait_idle(p)
        expected = expected_of(auto, simulator)
        assert_org_matches(auto, a, expected, wallets[:3])

        untrack(p, auto, a, wallets[1])
        wait_idle(p)
        assert_org_matches(auto, a, expected, [wallets[0], wallets[2]])
        assert_org_matches(auto, b, expected, wallets[:1])

        # Already stored (org A had it): tracking it in B recomputes B without a new fetch.
        track(p, auto, b, [wallets[2]])
        wait_idle(p)
        assert_org_matches(auto, b, expected, [wallets[0], wallets[2]])


def test_a_sync_batch_waits_for_the_rollups_it_caused(
    auto: psycopg.Connection, db_url: str, simulator: SimServer
) -> None:
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, simulator.market.wallets)
    with pipeline(db_url, simulator) as p, worker(p):
        progress = sync(p, auto, org)
        # Finished means every follow-up is done too: the numbers are complete already.
        assert_org_matches(auto, org, expected_of(auto, simulator), simulator.market.wallets)
        ingests = len(simulator.market.wallets)
        assert progress.done > ingests, "rollups count towards the batch"


def test_scheduler_queues_each_due_wallet_once(
    auto: psycopg.Connection, db_url: str, simulator: SimServer
) -> None:
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, simulator.market.wallets)
    with pipeline(db_url, simulator) as p, psycopg.connect(db_url, autocommit=True) as other:
        with other.transaction():
            assert locks.try_lead_tick(other)
            blocked = scheduler.tick(p, auto)
        assert not blocked.led and blocked.queued == 0

        first = scheduler.tick(p, auto)
        second = scheduler.tick(p, other)
        assert first.led and first.queued == len(simulator.market.wallets)
        assert second.led and second.queued == 0
        queued = auto.execute(
            "SELECT count(*) FROM jobs WHERE actor = 'ingest_wallet' AND state = 'queued'"
        ).fetchone()
        assert queued == (len(simulator.market.wallets),)


def test_a_waiting_sync_says_when_no_worker_runs_then_finishes_when_one_does(
    auto: psycopg.Connection, db_url: str, simulator: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "IDLE_HINT_S", 0.3)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, simulator.market.wallets[:2])
    out = io.StringIO()
    with pipeline(db_url, simulator) as p:
        queued = sync_module.queue_sync(p, auto, org)
        waiting = threading.Thread(
            target=sync_module.wait_for, args=(auto, queued), kwargs={"out": out}
        )
        waiting.start()
        deadline = time.monotonic() + 30
        while "is `hl-analytics worker` running" not in out.getvalue():
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.05)
        with worker(p):
            waiting.join(timeout=60)
    assert not waiting.is_alive()
    assert out.getvalue().splitlines()[-1].startswith("wallets 2/2 · fills stored ")


def test_the_scheduler_keeps_the_day_totals_through_today_and_freshens_stale_ones(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    server = start_simulator(small_market(wallets=4, days=3))
    org = orgs.create_org(auto, "A").id
    with pipeline(db_url, server) as p:
        track(p, auto, org, server.market.wallets)
        # A tick before any fill is stored: the day totals are kept through today.
        scheduler.run(p, 0.1, threading.Event(), once=True)
        with worker(p):
            wait_idle(p)
        # The rollups of the days before today left the wallets' day totals stale; the
        # next tick brings them up to date (and has no new day to write).
        stale = "SELECT count(*) FROM wallet_day_totals_stale"
        assert auto.execute(stale).fetchone() == (len(server.market.wallets),)
        assert scheduler.keep_day_totals(auto) == 0, "already through today"
        assert auto.execute(stale).fetchone() == (0,)
    today = auto.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert today is not None
    kept = auto.execute("SELECT model, through FROM read_model_state ORDER BY model").fetchall()
    assert kept == [("org_wallet_ranks", today[0]), ("wallet_day_totals", today[0])]
    # The standing ranks the org-day rollups kept are the sums of the wallet-days.
    ranks_check(auto, today[0])
    # Each wallet's day totals of today are its all-time sums.
    held = auto.execute(
        "SELECT wallet_id, trade_count, total_volume_usd, fees_usd, realized_pnl_usd"
        " FROM wallet_day_totals WHERE day = %s ORDER BY 1",
        today,
    ).fetchall()
    sums = auto.execute(
        "SELECT wallet_id, sum(trade_count), sum(total_volume_usd), sum(fees_usd),"
        " sum(realized_pnl_usd) FROM wallet_day_metrics GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert held == sums and len(sums) == len(server.market.wallets)


def test_scheduler_waits_out_an_unreachable_database(
    simulator: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:9/nowhere"
    with pipeline(unreachable, simulator) as p:
        stop = threading.Event()
        timer = threading.Timer(0.5, stop.set)
        timer.start()
        scheduler.run(p, 0.1, stop)  # returns when stopped, instead of crashing
        timer.join()
    warnings = [r for r in caplog.records if getattr(r, "action", "") == "scheduler_db_unavailable"]
    assert len(warnings) >= 2, "it kept retrying"
