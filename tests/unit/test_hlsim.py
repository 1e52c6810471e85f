"""The simulated market: determinism, Hyperliquid's shapes and limits, domain facts."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest

from hlsim.coins import BY_NAME, SPOT, spot_meta
from hlsim.faults import FaultPlan, Faults, InvalidFaultPlan
from hlsim.market import HORIZON, PAGE_LIMIT, Market
from hlsim.trader import BUILDER, DAY_MS, DUST_DIR, TAKER_PERP, fmt
from hlsim.weights import WeightBudget, weight
from jobs.hl_parse import parse_fill

NOW = 1_768_478_400_000  # 2026-01-15 12:00 UTC


def everything(market: Market) -> str:
    return json.dumps({w: market.fills(w) for w in market.wallets})


@pytest.fixture(scope="module")
def busy() -> Market:
    return Market.generate(5, wallets=12, days=3, now_ms=NOW, fills_per_day=(60, 600))


def all_fills(market: Market) -> list[dict[str, Any]]:
    return [f for w in market.wallets for f in market.fills(w)]


def test_the_same_seed_gives_the_same_market_and_another_seed_another() -> None:
    one = Market.generate(9, wallets=4, days=2, now_ms=NOW)
    two = Market.generate(9, wallets=4, days=2, now_ms=NOW)
    other = Market.generate(10, wallets=4, days=2, now_ms=NOW)
    assert everything(one) == everything(two)
    assert everything(one) != everything(other)


def test_advancing_in_many_steps_equals_one_step() -> None:
    at_once = Market.generate(9, wallets=4, days=2, now_ms=NOW)
    stepwise = Market.generate(9, wallets=4, days=1, now_ms=NOW - DAY_MS)
    new = sum(stepwise.advance(NOW - DAY_MS + k * DAY_MS // 50) for k in range(1, 51))
    assert new > 0
    assert everything(stepwise) == everything(at_once)


def test_every_generated_fill_validates_and_is_unique_and_ordered(busy: Market) -> None:
    for wallet in busy.wallets:
        raws = busy.fills(wallet)
        fills = [parse_fill(raw) for raw in raws]
        # Dust conversions all carry tid 0 and oid 0; every other fill is unique by (tid, oid).
        traded = [f for f in fills if f.dir != DUST_DIR]
        assert len({(f.tid, f.oid) for f in traded}) == len(traded)
        assert [f.time for f in fills] == sorted(f.time for f in fills)
        assert all(f.time <= NOW for f in fills)


def test_the_market_exercises_every_domain_rule(busy: Market) -> None:
    fills = all_fills(busy)
    coins = Counter(f["coin"] for f in fills)
    assert any(c.startswith("@") for c in coins) and "PURR/USDC" in coins
    assert "xyz:TSLA" in coins
    rebates = [f for f in fills if f["fee"].startswith("-")]
    assert rebates and all(not f["crossed"] for f in rebates)
    for f in fills:
        coin = BY_NAME[f["coin"]]
        spot_buy = coin.spot and f["side"] == "B" and f["dir"] == "Buy"
        assert f["feeToken"] == (coin.base if spot_buy else coin.quote)
    with_builder = [f for f in fills if "builderFee" in f and BY_NAME[f["coin"]].perp]
    assert with_builder
    for f in with_builder:
        notional = Decimal(f["px"]) * Decimal(f["sz"])
        exchange_fee = (notional * TAKER_PERP).quantize(Decimal("0.000001"))
        builder_fee = (notional * BUILDER).quantize(Decimal("0.000001"))
        assert Decimal(f["builderFee"]) == builder_fee
        assert Decimal(f["fee"]) == exchange_fee + builder_fee, "fee must include builderFee"
    assert any("liquidation" in f for f in fills)
    assert any(f["time"] % DAY_MS == 0 for f in fills), "no fill on a UTC midnight"
    self_trades = 0
    for wallet in busy.wallets:
        by_tid: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for f in busy.fills(wallet):
            if f["dir"] != DUST_DIR:
                by_tid[f["tid"]].append(f)
        for pair in (p for p in by_tid.values() if len(p) > 1):
            assert len(pair) == 2 and pair[0]["oid"] != pair[1]["oid"]
            assert {pair[0]["side"], pair[1]["side"]} == {"A", "B"}
            self_trades += 1
    assert self_trades, "no self-trade (one tid, two orders)"
    bursts = Counter((f["time"], f["oid"]) for f in fills)
    assert max(bursts.values()) >= 8, "no sweep of many fills in one millisecond"


def test_spot_meta_names_every_spot_coin() -> None:
    meta = spot_meta()
    tokens = {t["index"]: t["name"] for t in meta["tokens"]}  # type: ignore[attr-defined]
    pairs = {p["name"]: p for p in meta["universe"]}  # type: ignore[attr-defined]
    for coin in SPOT:
        pair = pairs[coin.name]
        assert tokens[pair["tokens"][0]] == coin.base
        assert tokens[pair["tokens"][1]] == coin.quote
        if coin.name.startswith("@"):
            assert pair["index"] == int(coin.name[1:])


def test_fills_by_time_pages_oldest_first_within_the_horizon() -> None:
    market = Market(3, now_ms=NOW)
    wallet = market.add_wallet(fills_per_day=6_000, since_ms=NOW - 2 * DAY_MS)
    truth = market.fills(wallet)
    assert len(truth) > HORIZON + PAGE_LIMIT
    page = market.user_fills_by_time(wallet, 0, None)
    assert page == truth[-HORIZON:][:PAGE_LIMIT]
    t = truth[-5]["time"]
    inclusive = market.user_fills_by_time(wallet, t, t)
    assert inclusive and all(f["time"] == t for f in inclusive)
    assert inclusive == [f for f in truth if f["time"] == t]
    assert market.user_fills(wallet) == truth[::-1][:PAGE_LIMIT]


def test_fills_after_the_clock_appear_only_when_it_reaches_them() -> None:
    market = Market(3, now_ms=NOW)
    wallet = market.add_wallet()
    market.add_fill(wallet, NOW - 1)
    late = market.add_fill(wallet, NOW + 1_000)
    assert late not in market.fills(wallet)
    assert market.user_fills_by_time(wallet, 0, NOW + 5_000) == market.fills(wallet)
    market.advance(NOW + 1_000)
    assert market.fills(wallet)[-1] == late


def test_request_weights_follow_hyperliquid() -> None:
    assert weight("userFillsByTime", PAGE_LIMIT) == 20 + 100
    assert weight("userFills", 19) == 20
    assert weight("spotMeta", 0) == 20
    assert weight("l2Book", 0) == 2


def test_the_weight_budget_runs_out_and_refills() -> None:
    now = [0.0]
    budget = WeightBudget(1200, clock=lambda: now[0])
    admitted = 0
    while budget.admits("ip", "spotMeta"):
        budget.charge("ip", 20)
        admitted += 1
    assert admitted == 60
    assert budget.admits("other-ip", "spotMeta")
    assert budget.retry_after_s("ip", "spotMeta") == pytest.approx(1.0)
    now[0] = 1.0
    assert budget.admits("ip", "spotMeta")


def test_fault_plans_are_validated_and_spent() -> None:
    with pytest.raises(InvalidFaultPlan, match="unknown fault fields"):
        FaultPlan.from_json({"status": 500, "colour": "red"})
    with pytest.raises(InvalidFaultPlan):
        FaultPlan.from_json({"count": 0})
    faults = Faults()
    faults.add_json({"status": 429, "count": 2, "type": "userFillsByTime"})
    assert faults.take("spotMeta", None) is None
    assert [p.status for p in (faults.take("userFillsByTime", "0x1"),) if p] == [429]
    assert faults.take("userFillsByTime", "0x1") is not None
    assert faults.take("userFillsByTime", "0x1") is None


@pytest.mark.parametrize(
    ("value", "text"),
    [("0", "0.0"), ("12", "12.0"), ("0.1000", "0.1"), ("-0.0000001", "0.0"), ("1e3", "1000.0")],
)
def test_decimals_are_written_like_the_api(value: str, text: str) -> None:
    assert fmt(Decimal(value)) == text
