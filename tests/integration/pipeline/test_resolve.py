"""Coins whose quote token was unknown are resolved later, and their days rolled up again.

The upgrade of migration 0010 records every stored coin unresolved; a metadata
request that failed leaves a coin unresolved too. The scheduler sends
`resolve_markets` for such coins; a worker resolves them from Hyperliquid's
metadata and marks every wallet-day holding their fills for rollup, so the numbers
end as if the coins had been known from the start.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from jobs import scheduler
from storage import markets
from tests.integration.pipeline.expected import METRICS, expected_rows
from tests.integration.pipeline.support import pipeline, sync, worker
from tests.reliability.support import two_orgs_sharing_a_wallet
from tests.simulator import StartSimulator, small_market
from tests.waiting import wait_until


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def test_coins_metadata_could_not_resolve_are_resolved_later_and_their_days_rolled_up(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    server = start_simulator(small_market(wallets=6, days=3))
    members = two_orgs_sharing_a_wallet(auto, server.market.wallets)
    # Metadata is down for the first sync: spot pairs and HIP-3 perps stay unpriced.
    server.state.faults.add_json({"status": 500, "count": 10_000, "type": "spotMeta"})
    server.state.faults.add_json({"status": 500, "count": 10_000, "type": "meta"})
    with pipeline(db_url, server) as p, worker(p):
        assert sync(p, auto).failed == 0, "fills are stored without metadata"
        unresolved = auto.execute(
            "SELECT coin FROM hl_markets WHERE resolved_at IS NULL ORDER BY coin"
        ).fetchall()
        assert unresolved, "the market trades spot pairs and HIP-3 perps"
        assert auto.execute(METRICS).fetchall() != expected_rows(auto, server, members)
        unpriced = auto.execute("SELECT sum(unpriced_fills) FROM global_day_metrics").fetchone()
        assert unpriced is not None and unpriced[0] > 0

        server.state.faults.clear()
        # Not retried before RETRY_AFTER: make them due, as time passing would.
        auto.execute("UPDATE hl_markets SET checked_at = NULL")
        result = scheduler.tick(p, auto)
        assert result.led
        assert markets.due_unresolved(auto) == [], "queued once, then not due again"

        def resolved() -> bool:
            left = auto.execute("SELECT count(*) FROM hl_markets WHERE resolved_at IS NULL")
            row = left.fetchone()
            return row is not None and row[0] == 0

        wait_until(resolved, 60, "the coins resolved")
        # The resolving job queued the days' rollups before it committed: wait them out.
        p.broker.join("ingest", timeout=60_000)
        p.broker.join("rollups", timeout=60_000)
        assert auto.execute(METRICS).fetchall() == expected_rows(auto, server, members)
