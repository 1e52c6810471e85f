"""The one-off history re-read of migration 0008, through the in-process pipeline.

Passes of earlier releases ended at the first page shorter than 2000 fills, so a
wallet can lack fills from long before its cursor, which no later pass (10 minutes of
overlap) reaches. The upgrade flags every ingested wallet; its next pass reads its
whole reachable history, stores what was missing once, and the days that received
fills are rolled up again.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from hlsim.faults import ShortPages
from storage import cursor, orgs, reports
from tests.integration.pipeline.expected import METRICS, expected_rows
from tests.integration.pipeline.support import pipeline, sync, worker
from tests.reliability.support import assert_every_fill_stored_once, two_orgs_sharing_a_wallet
from tests.simulator import StartSimulator, small_market

HOUR_MS = 3_600_000


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def test_flagged_wallets_reread_their_history_once_and_find_what_was_lost(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    server = start_simulator(small_market(wallets=4, days=3), short_pages=ShortPages(8))
    market = server.market
    members = two_orgs_sharing_a_wallet(auto, market.wallets)
    with pipeline(db_url, server) as p, worker(p):
        assert sync(p, auto).failed == 0
        assert_every_fill_stored_once(auto, server)

        # Fills a short page hid from an earlier release: long before every cursor.
        victim = market.wallets[1]
        oldest = market.fills(victim)[0]["time"]
        lost = [market.add_fill(victim, oldest + 2 * HOUR_MS + i) for i in range(3)]
        assert sync(p, auto).failed == 0
        stored = {int(t) for (t,) in auto.execute("SELECT tid FROM hl_fills_raw")}
        assert not {f["tid"] for f in lost} & stored, "a normal pass does not reach that far"

        # What migration 0008 does on upgrade.
        flagged = auto.execute(
            "UPDATE hl_ingest_cursor SET reread_pending = true WHERE synced_until_ms IS NOT NULL"
        ).rowcount
        assert flagged == len(market.wallets)
        assert sum(o.reread_pending for o in reports.org_sync_status(auto)) == 5  # one shared
        assert sync(p, auto).failed == 0

        assert_every_fill_stored_once(auto, server)
        assert auto.execute(METRICS).fetchall() == expected_rows(auto, server, members)
        assert all(o.reread_pending == 0 for o in reports.org_sync_status(auto))
        # The flag is spent: the next pass starts from the cursor again, and finds nothing.
        for wallet in orgs.upsert_wallets(auto, market.wallets):
            state = cursor.get_cursor(auto, wallet.id)
            assert state is not None and not state.reread_pending

        def fill_requests() -> int:
            # A sync also asks funding and snapshots: the re-read concerns fills.
            return sum(e.type == "userFillsByTime" for e in server.state.log.entries())

        before = fill_requests()
        assert sync(p, auto).failed == 0
        assert fill_requests() - before <= 2 * len(market.wallets)
