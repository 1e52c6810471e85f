"""Account snapshots end to end against the independent computation: positions, account
value and unrealized PnL of a wallet that flipped from long to short, one liquidated,
one holding a HIP-3 perp (USDH collateral), one without perp positions, and generated
traders; a day keeps its last snapshot; an invalid snapshot keeps the previous one."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from hlsim.faults import FaultPlan
from storage import kind_cursor, orgs, positions
from storage.kind_cursor import POSITIONS
from tests.integration.pipeline.expected import expected_account
from tests.integration.pipeline.support import pipeline, sync, worker
from tests.integration.pipeline.test_funding import FLIP_AT, HOUR, NOW, planted_market
from tests.simulator import StartSimulator


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def assert_latest_matches(conn: psycopg.Connection, server: object, ids: dict[str, int]) -> None:
    for address, wallet_id in ids.items():
        want = expected_account(server, address)  # type: ignore[arg-type]
        days = positions.account_days(conn, wallet_id)
        assert days, address
        latest = days[-1]
        assert latest.taken_ms == server.market.now_ms  # type: ignore[attr-defined]
        assert (latest.account_value_usd, latest.unrealized_pnl_usd) == (
            want.value,
            want.unrealized,
        ), address
        assert latest.open_positions == len(want.positions)
        got = {p.coin: p for p in positions.positions(conn, wallet_id)}
        assert set(got) == set(want.positions), address
        for coin, raw in want.positions.items():
            p = got[coin]
            assert p.dex == want.dex_of[coin]
            assert p.size == Decimal(raw["szi"]) and p.entry_px == Decimal(raw["entryPx"])
            assert p.unrealized_pnl == Decimal(raw["unrealizedPnl"])
            assert p.position_value == Decimal(raw["positionValue"])
            assert p.margin_used == Decimal(raw["marginUsed"])
            assert p.leverage == raw["leverage"]["value"]
            assert p.leverage_type == raw["leverage"]["type"]
            assert p.funding_since_open == -Decimal(raw["cumFunding"]["sinceOpen"])


def test_snapshots_match_the_independent_computation(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    market, who = planted_market()
    server = start_simulator(market)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, market.wallets)
    ids = {w.address: w.id for w in orgs.upsert_wallets(auto, market.wallets)}
    with pipeline(db_url, server) as p, worker(p):
        assert sync(p, auto, org).failed == 0
        assert_latest_matches(auto, server, ids)

        flipper = {q.coin: q for q in positions.positions(auto, ids[who["flipper"]])}
        assert flipper["ETH"].size == Decimal("-3.0"), "long 2, sold 5: short 3"
        since_flip = sum(
            Decimal(e["delta"]["usdc"])
            for e in market.funding(who["flipper"])
            if e["time"] > FLIP_AT and e["delta"]["usdc"] != "not-a-number"
        )
        assert since_flip != 0 and flipper["ETH"].funding_since_open == since_flip
        assert positions.positions(auto, ids[who["liquidated"]]) == []
        hip3 = positions.positions(auto, ids[who["hip3"]])
        assert [(q.coin, q.dex, q.leverage_type) for q in hip3] == [("xyz:TSLA", "xyz", "isolated")]
        none = positions.account_days(auto, ids[who["none"]])
        assert none[-1].open_positions == 0 and none[-1].unrealized_pnl_usd == 0

        # Later the same day: the day's row is replaced by its last snapshot.
        market.advance(NOW + HOUR)
        assert sync(p, auto, org).failed == 0
        assert_latest_matches(auto, server, ids)
        assert len(positions.account_days(auto, ids[who["flipper"]])) == 1

        # The next day, with an invalid answer for one wallet: it keeps its last snapshot.
        victim = ids[who["hip3"]]
        before = positions.account_days(auto, victim)
        server.state.faults.add(
            FaultPlan(malformed=True, type="clearinghouseState", user=who["hip3"], count=1)
        )
        market.advance(NOW + 13 * HOUR)
        assert sync(p, auto, org).failed == 0
        assert positions.account_days(auto, victim) == before
        state = kind_cursor.get_cursor(auto, victim, POSITIONS)
        assert state is not None and "invalid snapshot" in (state.last_error or "")
        others = {a: i for a, i in ids.items() if i != victim}
        assert_latest_matches(auto, server, others)
        assert len(positions.account_days(auto, ids[who["flipper"]])) == 2, "one row a day"
