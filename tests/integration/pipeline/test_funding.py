"""Funding end to end against the independent computation: exchange → funding ingest →
wallet-days → org-days, for a wallet that flips from long to short, one liquidated,
one holding a HIP-3 perp, one without perp positions, and generated traders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import psycopg
import pytest

from hlsim.market import Market
from hlsim.server import SimServer
from hlsim.trader import ZERO_HASH
from storage import funding, orgs
from tests.integration.pipeline.expected import assert_org_days, utc_day
from tests.integration.pipeline.support import expected_of, pipeline, sync, worker
from tests.simulator import FIXED_NOW_MS, StartSimulator

HOUR = 3_600_000
NOW = FIXED_NOW_MS
FLIP_AT = NOW - 10 * HOUR - 123
LIQUIDATED_AT = NOW - 20 * HOUR - 7
WALLET_DAYS = "SELECT wallet_id, day, funding_usd FROM wallet_day_metrics ORDER BY 1, 2"


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def planted_market() -> tuple[Market, dict[str, str]]:
    market = Market.generate(11, wallets=3, days=2, now_ms=NOW, fills_per_day=(20, 120))
    who = {name: market.add_wallet() for name in ("flipper", "liquidated", "hip3", "none")}
    flipper = who["flipper"]
    market.add_fill(
        flipper, NOW - 30 * HOUR, coin="ETH", side="B", sz="2.0", startPosition="0.0",
        dir="Open Long",
    )  # fmt: skip
    market.add_fill(
        flipper, FLIP_AT, coin="ETH", side="A", sz="5.0", startPosition="2.0", dir="Long > Short"
    )
    liquidated = who["liquidated"]
    market.add_fill(
        liquidated, NOW - 40 * HOUR, coin="BTC", side="B", sz="0.1", startPosition="0.0",
        dir="Open Long",
    )  # fmt: skip
    market.add_fill(
        liquidated, LIQUIDATED_AT, coin="BTC", side="A", sz="0.1", startPosition="0.1",
        dir="Liquidated Cross Long",
        liquidation={"liquidatedUser": liquidated, "markPx": "60000.0", "method": "market"},
    )  # fmt: skip
    market.add_fill(
        who["hip3"], NOW - 26 * HOUR, coin="xyz:TSLA", side="B", sz="10.0", startPosition="0.0",
        dir="Open Long",
    )  # fmt: skip
    market.add_fill(who["none"], NOW - 5 * HOUR, coin="@1", side="B")
    # A malformed entry among the flipper's payments: quarantined, the rest stored.
    delta = {"type": "funding", "coin": "ETH", "usdc": "not-a-number", "szi": "-3.0"}
    bad = {"time": NOW - 3 * HOUR + 1, "hash": ZERO_HASH, "delta": delta}
    market.add_raw_funding(flipper, bad["time"], bad)
    return market, who


def test_funding_and_its_days_match_the_independent_computation(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    market, who = planted_market()
    server: SimServer = start_simulator(market)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, market.wallets)
    ids = {w.address: w.id for w in orgs.upsert_wallets(auto, market.wallets)}
    with pipeline(db_url, server) as p, worker(p):
        progress = sync(p, auto, org)
        assert progress.failed == 0
        expected = expected_of(auto, server)
        assert_org_days(auto, org, expected.org_days(ids.values()))
        want = sorted((w, d, day.funding) for (w, d), day in expected.wallet_days.items())
        got = auto.execute(WALLET_DAYS).fetchall()
        assert got == want

        first = got
        assert sync(p, auto, org).failed == 0
        assert auto.execute(WALLET_DAYS).fetchall() == first, "a second sync changes nothing"

    stored = {a: funding.wallet_funding(auto, i) for a, i in ids.items()}
    for address in market.wallets:
        valid = [e for e in market.funding(address) if e["delta"]["usdc"] != "not-a-number"]
        assert len(stored[address]) == len(valid), "each payment stored once"

    flips = stored[who["flipper"]]
    assert {p.szi > 0 for p in flips if p.time < FLIP_AT} == {True}
    assert {p.szi < 0 for p in flips if p.time > FLIP_AT} == {True}
    # Opened on the hour: paid from the next hour on, up to the exchange's clock (12:00).
    assert len(flips) == 30, "an hourly payment from the first hour after the opening"
    assert funding.quarantined(auto, ids[who["flipper"]]) == 1

    liquidated = stored[who["liquidated"]]
    assert liquidated and max(p.time for p in liquidated) < LIQUIDATED_AT
    assert len(liquidated) == 19, "hourly while open, none after the liquidation"

    hip3 = stored[who["hip3"]]
    assert {p.coin for p in hip3} == {"xyz:TSLA"} and len(hip3) == 26
    per_day: dict[date, Decimal] = defaultdict(Decimal)
    for p in hip3:
        per_day[utc_day(p.time)] += p.usdc
    hip3_days = {d: f for (w, d, f) in first if w == ids[who["hip3"]]}
    assert hip3_days == dict(per_day), "USDH collateral is a USD stablecoin: counted at par"

    assert stored[who["none"]] == []
    assert all(f == 0 for (w, _, f) in first if w == ids[who["none"]])
