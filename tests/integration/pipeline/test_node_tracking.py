"""Tracking changes reach a running node-ingest through the change notifications.

The follower is given a re-read interval of an hour: only a notification (or a
re-established link) can explain that it follows a wallet tracked a moment ago.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from hl_core.settings import DEFAULT_MAX_WALLETS_PER_ORG
from hlsim import nodefiles
from hlsim.market import Market
from jobs import tracking
from jobs.node_source import follow
from jobs.node_tracked import APP_NAME, TrackedWallets
from jobs.pipeline import QUEUE_INGEST, Pipeline
from storage import cursor, node_position, orgs
from tests.factories import ms
from tests.integration.pipeline.support import pipeline, worker
from tests.simulator import StartSimulator
from tests.waiting import wait_until

T0 = ms(2026, 1, 16, 1)
NOW = T0 + 20 * 60_000
BLOCK_MS = 1000


def market_at(now_ms: int) -> Market:
    return Market.generate(11, wallets=6, days=1, now_ms=now_ms, fills_per_day=(300, 3000))


def busiest_between(wallets: list[str], start_ms: int, end_ms: int) -> list[str]:
    """The wallets by their number of fills in [start_ms, end_ms), most first (the same
    market, generated apart and advanced: the one under test must not move yet)."""
    probe = market_at(T0)
    probe.advance(end_ms)
    counts = Counter(user for user, _ in probe.fills_between(start_ms, end_ms))
    ranked = sorted(wallets, key=lambda w: -counts[w])
    assert all(counts[w] > 0 for w in ranked[:3]), counts
    return ranked


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def fill_times(conn: psycopg.Connection, address: str) -> list[int]:
    rows = conn.execute(
        "SELECT f.time FROM hl_fills_raw f JOIN wallets w ON w.id = f.wallet_id"
        " WHERE w.address = %s ORDER BY f.time",
        (address,),
    )
    return [int(t) for (t,) in rows]


def market_times(market: Market, address: str, start_ms: int, end_ms: int) -> list[int]:
    return sorted(int(f["time"]) for f in market.fills(address) if start_ms <= f["time"] < end_ms)


@contextmanager
def following(p: Pipeline, root: Path, tracked: TrackedWallets) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(
        target=follow, args=(p, root, stop), kwargs={"poll_s": 0.1, "tracked": tracked}
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def caught_up_with(conn: psycopg.Connection, writer: nodefiles.NodeWriter) -> None:
    def there() -> bool:
        pos = node_position.get(conn, "node")
        return pos is not None and pos.last_block == writer.next_block - 1

    wait_until(there, 60, "node-ingest to reach the last block written")


def test_a_wallet_tracked_while_node_ingest_runs_is_followed_at_once_after_one_api_pass(
    auto: psycopg.Connection, db_url: str, tmp_path: Path, start_simulator: StartSimulator
) -> None:
    market = market_at(T0)
    server = start_simulator(market)
    first, later, *_ = busiest_between(market.wallets, T0, NOW)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, [first])
    writer = nodefiles.NodeWriter(market, tmp_path, start_ms=T0 - 600_000, block_ms=BLOCK_MS)
    writer.write_until(T0)
    tracked = TrackedWallets(db_url, reread_s=3600)
    with pipeline(db_url, server) as p:
        with following(p, tmp_path, tracked):
            caught_up_with(auto, writer)
            assert fill_times(auto, first) and not fill_times(auto, later)
            with auto.transaction():
                tracking.track_wallets(
                    auto, org, [later], max_wallets=DEFAULT_MAX_WALLETS_PER_ORG, pipeline=p
                )
            wait_until(lambda: later in tracked.wallets, 10, "the notification to arrive")
            writer.write_until(NOW)
            caught_up_with(auto, writer)
            # No worker runs: the node alone stored its fills since it was tracked.
            assert fill_times(auto, later) == market_times(market, later, T0, NOW)
            # Its pass over its reachable history is queued, once (the node's own
            # request for it merged with it).
            queued = auto.execute(
                "SELECT count(*) FROM jobs WHERE actor = 'ingest_wallet' AND state = 'queued'"
                " AND message->'args'->>0 = %s",
                (later,),
            ).fetchone()
            assert queued == (1,)
        with worker(p):
            p.broker.join(QUEUE_INGEST, timeout=60_000)
        # The API pass brought everything before; what both sources saw is stored once.
        assert fill_times(auto, later) == market_times(market, later, 0, NOW)
        (wallet,) = orgs.upsert_wallets(auto, [later])
        row = next(r for r in cursor.schedule_rows(auto) if r.wallet_id == wallet.id)
        assert row.api_synced


def test_untracking_and_a_lost_link_reach_node_ingest_without_a_periodic_reread(
    auto: psycopg.Connection, db_url: str, tmp_path: Path, start_simulator: StartSimulator
) -> None:
    market = market_at(T0)
    server = start_simulator(market)
    kept, dropped, silent, *_ = busiest_between(market.wallets, T0, NOW)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, [kept, dropped])
    writer = nodefiles.NodeWriter(market, tmp_path, start_ms=T0 - 600_000, block_ms=BLOCK_MS)
    writer.write_until(T0)
    tracked = TrackedWallets(db_url, reread_s=3600)
    with pipeline(db_url, server) as p, following(p, tmp_path, tracked):
        caught_up_with(auto, writer)
        dropped_before = fill_times(auto, dropped)
        assert dropped_before
        with auto.transaction():
            tracking.untrack_wallet(auto, org, dropped, pipeline=p)
        wait_until(lambda: dropped not in tracked.wallets, 10, "the untracking to arrive")
        # Tracked with no notification (as if sent while the link was down), then the
        # link drops: only the whole re-read on reconnecting can find it.
        with auto.transaction():
            orgs.track_wallets(auto, org, [silent])
        killed = auto.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (APP_NAME,),
        ).fetchone()
        assert killed == (1,)
        wait_until(lambda: silent in tracked.wallets, 10, "the re-read after reconnecting")
        writer.write_until(NOW)
        caught_up_with(auto, writer)
        assert fill_times(auto, dropped) == dropped_before
        assert fill_times(auto, silent) == market_times(market, silent, T0, NOW)
        assert fill_times(auto, kept) == market_times(market, kept, T0 - 600_000, NOW)
