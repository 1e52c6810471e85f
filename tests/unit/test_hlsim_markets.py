"""The simulated market's listings and market kinds: metadata shapes, system fills, an oracle.

The replay oracle recomputes every fill's `startPosition` and `closedPnl` from
the fills alone (average entry for perps, average cost for spot and outcome
balances), which pins flips, spot sells, dust conversions and settlements.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest

from hlsim.coins import BY_NAME, COINS, DEX_BY_NAME, SPOT, Coin, meta, perp_dexs, spot_meta
from hlsim.market import Market
from hlsim.server import demo_market
from hlsim.trader import DAY_MS, DUST_AT_MS, DUST_DIR, SETTLE_AT_MS, SETTLEMENT_DIR, ZERO_HASH, fmt
from jobs.hl_parse import parse_fill

NOW = 1_768_478_400_000  # 2026-01-15 12:00 UTC
_ZERO = Decimal(0)


@pytest.fixture(scope="module")
def busy() -> Market:
    return Market.generate(5, wallets=16, days=4, now_ms=NOW, fills_per_day=(20, 600))


@pytest.fixture(scope="module")
def demo() -> Market:
    return demo_market(3)


def all_fills(market: Market) -> list[dict[str, Any]]:
    return [f for w in market.wallets for f in market.fills(w)]


# -- metadata answers -----------------------------------------------------------


def test_perp_dexs_lists_the_default_dex_as_null_then_each_builder_dex() -> None:
    dexs = perp_dexs()
    assert dexs[0] is None
    assert [d["name"] for d in dexs[1:] if d] == ["xyz"]
    xyz = dexs[1]
    assert xyz is not None
    assert set(xyz) == {
        "name",
        "fullName",
        "deployer",
        "oracleUpdater",
        "feeRecipient",
        "assetToStreamingOiCap",
        "assetToFundingMultiplier",
    }
    assert str(xyz["deployer"]).startswith("0x") and len(str(xyz["deployer"])) == 42


def test_meta_of_each_dex_names_its_perps_and_its_collateral_token() -> None:
    tokens = {t["name"]: t["index"] for t in spot_meta()["tokens"]}  # type: ignore[attr-defined]
    default = meta()
    assert default == meta("")
    assert [a["name"] for a in default["universe"]] == ["BTC", "ETH", "SOL", "HYPE"]  # type: ignore[attr-defined]
    assert default["collateralToken"] == 0 == tokens["USDC"]
    assert default["marginTables"] == []
    xyz = meta("xyz")
    assert [a["name"] for a in xyz["universe"]] == ["xyz:TSLA", "xyz:NVDA"]  # type: ignore[attr-defined]
    assert xyz["collateralToken"] == tokens["USDH"] != 0
    for asset in xyz["universe"]:  # type: ignore[attr-defined]
        assert set(asset) == {"name", "szDecimals", "maxLeverage"}
        assert asset["szDecimals"] == BY_NAME[asset["name"]].sz_places
    with pytest.raises(KeyError):
        meta("nope")


def test_spot_pairs_resolve_through_the_universe_index_not_the_token_index() -> None:
    answer = spot_meta()
    tokens = {t["index"]: t for t in answer["tokens"]}  # type: ignore[attr-defined]
    by_index = {p["index"]: p for p in answer["universe"]}  # type: ignore[attr-defined]
    for token in tokens.values():
        assert set(token) == {
            "name",
            "szDecimals",
            "weiDecimals",
            "index",
            "tokenId",
            "isCanonical",
            "evmContract",
            "fullName",
        }

    def resolve(coin: str) -> tuple[str, str]:
        pair = by_index[int(coin[1:])] if coin.startswith("@") else None
        pair = pair or next(p for p in by_index.values() if p["name"] == coin)
        base, quote = pair["tokens"]
        return tokens[base]["name"], tokens[quote]["name"]

    assert resolve("PURR/USDC") == ("PURR", "USDC")
    assert resolve("@3") == ("HYPE", "USDT0")
    assert tokens[3]["name"] == "JEFF", "token 3 is not what pair @3 trades"
    assert resolve("@4") == ("JEFF", "PURR")
    for coin in SPOT:
        assert resolve(coin.name) == (coin.base, coin.quote)
    assert by_index[0]["isCanonical"] and not any(
        p["isCanonical"] for p in list(by_index.values())[1:]
    )


def test_every_listing_knows_its_kind_dex_base_and_quote() -> None:
    for coin in COINS:
        if coin.name.startswith("#"):
            assert coin.kind == "outcome" and coin.quote == "USDC" and coin.encoding % 10 in (0, 1)
        elif coin.name.startswith("@") or "/" in coin.name:
            assert coin.kind == "spot" and coin.dex is None
        elif ":" in coin.name:
            dex = coin.name.split(":")[0]
            assert coin.kind == "perp" and coin.dex == dex
            assert coin.quote == DEX_BY_NAME[dex].collateral == "USDH"
        else:
            assert coin.kind == "perp" and coin.dex is None and coin.quote == "USDC"
    assert BY_NAME["@3"].quote == "USDT0" and BY_NAME["@4"].quote == "PURR"


# -- planted fills ----------------------------------------------------------------


def test_a_dust_conversion_is_one_fill_per_coin_in_one_millisecond_with_tid_zero() -> None:
    market = Market(1, now_ms=NOW)
    wallet = market.add_wallet()
    at = NOW - DAY_MS + DUST_AT_MS
    fills = market.add_dust(wallet, at, ["PURR/USDC", "@1"], [Decimal(3), Decimal("0.02")])
    assert market.fills(wallet) == fills
    assert [(f["coin"], f["sz"]) for f in fills] == [("PURR/USDC", "3.0"), ("@1", "0.02")]
    for raw in fills:
        assert raw["dir"] == DUST_DIR and raw["side"] == "A" and raw["time"] == at
        assert (raw["tid"], raw["oid"], raw["hash"], raw["crossed"]) == (0, 0, ZERO_HASH, False)
        assert raw["fee"] == "0.0" and raw["feeToken"] == "USDC"
        parse_fill(raw)
    with pytest.raises(ValueError):
        market.add_dust(wallet, at, ["BTC"])


@pytest.mark.parametrize("coin", ["xyz:TSLA", "@3", "@4", "#10", "#11", "PURR/USDC", "SOL"])
def test_fills_can_be_planted_on_any_coin(coin: str) -> None:
    market = Market(1, now_ms=NOW)
    wallet = market.add_wallet()
    raw = market.add_fill(wallet, NOW - 1, coin=coin)
    assert raw["coin"] == coin and parse_fill(raw).coin == coin
    assert raw["feeToken"] == (BY_NAME[coin].base if BY_NAME[coin].spot else BY_NAME[coin].quote)


def test_user_fills_by_time_with_a_dex_answers_only_that_dexs_fills(busy: Market) -> None:
    wallet = next(
        w for w in busy.wallets if any(f["coin"].startswith("xyz:") for f in busy.fills(w))
    )
    truth = busy.fills(wallet)
    scoped = busy.user_fills_by_time(wallet, 0, None, "xyz")
    assert scoped == [f for f in truth if f["coin"].startswith("xyz:")][:2000]
    assert busy.user_fills_by_time(wallet, 0, None) == truth[-10_000:][:2000]
    with pytest.raises(KeyError):
        busy.user_fills_by_time(wallet, 0, None, "nope")


# -- generated fills ------------------------------------------------------------


def replay(fills: list[dict[str, Any]]) -> None:
    """Checks each fill's startPosition and closedPnl against the fills before it."""
    size: dict[str, Decimal] = defaultdict(Decimal)
    entry: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        coin: Coin = BY_NAME[f["coin"]]
        name, px, sz = coin.name, Decimal(f["px"]), Decimal(f["sz"])
        start = size[name]
        assert Decimal(f["startPosition"]) == start.quantize(coin.lot), f
        signed = sz if f["side"] == "B" else -sz
        new = start + signed
        if coin.perp:
            if f["side"] == "B" and start < 0:
                closed = (entry[name] - px) * min(sz, -start)
            elif f["side"] == "A" and start > 0:
                closed = (px - entry[name]) * min(sz, start)
            else:
                closed = _ZERO
            flipped = start != 0 and new != 0 and (start > 0) != (new > 0)
            assert flipped == (f["dir"] in ("Long > Short", "Short > Long")), f
            if new == 0:
                entry[name] = _ZERO
            elif start == 0 or (start > 0) == (signed > 0):
                entry[name] = (entry[name] * abs(start) + px * sz) / abs(new)
            elif flipped:
                entry[name] = px
        else:
            assert f["side"] == "B" or sz <= start or start == 0, "sold more than the balance"
            closed = (px - entry[name]) * sz if f["side"] == "A" and start > 0 else _ZERO
            if f["side"] == "B" and new > 0:
                entry[name] = (entry[name] * max(start, _ZERO) + px * sz) / new
            new = max(new, _ZERO)
            if new == 0:
                entry[name] = _ZERO
        assert f["closedPnl"] == fmt(closed), f
        size[name] = new


def test_positions_and_closed_pnl_follow_from_the_fills(busy: Market) -> None:
    for wallet in busy.wallets:
        replay(busy.fills(wallet))


def test_flips_open_the_other_side_and_close_the_first(busy: Market) -> None:
    flips = [f for f in all_fills(busy) if f["dir"] in ("Long > Short", "Short > Long")]
    assert {f["dir"] for f in flips} == {"Long > Short", "Short > Long"}
    for f in flips:
        start = Decimal(f["startPosition"])
        assert (start > 0) == (f["dir"] == "Long > Short") == (f["side"] == "A")
        assert Decimal(f["sz"]) > abs(start)


def test_outcome_trades_are_fee_free_between_zero_and_one_and_settle_alike(busy: Market) -> None:
    fills = [f for f in all_fills(busy) if BY_NAME[f["coin"]].outcome]
    trades = [f for f in fills if f["dir"] != SETTLEMENT_DIR]
    assert trades and {f["dir"] for f in trades} == {"Buy", "Sell"}
    for f in trades:
        assert 0 < Decimal(f["px"]) < 1
        assert (f["fee"], f["feeToken"]) == ("0.0", "USDC") and "builderFee" not in f
    settled: dict[int, dict[str, str]] = defaultdict(dict)
    for f in (f for f in fills if f["dir"] == SETTLEMENT_DIR):
        assert f["time"] % DAY_MS == SETTLE_AT_MS and f["px"] in ("1.0", "0.0")
        assert (f["hash"], f["oid"], f["fee"], f["side"]) == (ZERO_HASH, 0, "0.0", "A")
        assert f["tid"] > 0 and f["sz"] == f["startPosition"]
        assert settled[f["time"]].setdefault(f["coin"], f["px"]) == f["px"], "one result a day"
    assert settled
    for day in settled.values():
        if len(day) == 2:
            assert sorted(day.values()) == ["0.0", "1.0"], "both sides of an outcome won"


def test_dust_is_converted_daily_at_half_past_midnight(busy: Market) -> None:
    dust = [(w, f) for w in busy.wallets for f in busy.fills(w) if f["dir"] == DUST_DIR]
    assert dust
    for _, f in dust:
        assert f["time"] % DAY_MS == DUST_AT_MS and BY_NAME[f["coin"]].quote == "USDC"
        assert Decimal(f["px"]) * Decimal(f["sz"]) < 3, "converted more than dust"
    events = Counter((w, f["time"]) for w, f in dust)
    assert max(events.values()) >= 2, "no conversion of two coins in one millisecond"


def test_hip3_fills_pay_in_usdh_and_carry_keys_beyond_the_documented_ones(busy: Market) -> None:
    fills = [f for f in all_fills(busy) if BY_NAME[f["coin"]].dex == "xyz"]
    assert fills and all(f["feeToken"] == "USDH" for f in fills)
    assert any("deployerFee" in f for f in fills)
    with_builder = [f for f in fills if "builderFee" in f]
    assert with_builder and all(f["builder"].startswith("0x") for f in with_builder)
    assert all("builder" not in f for f in all_fills(busy) if not BY_NAME[f["coin"]].dex)


def test_the_demo_market_trades_every_kind_of_market(demo: Market) -> None:
    fills = all_fills(demo)
    assert 15_000 < len(fills) < 80_000
    coins = Counter(f["coin"] for f in fills)
    dirs = Counter(f["dir"] for f in fills)
    fee_tokens = Counter(f["feeToken"] for f in fills)
    kinds = Counter((BY_NAME[c].kind, BY_NAME[c].dex, BY_NAME[c].quote) for c in coins)
    assert set(kinds) == {
        ("perp", None, "USDC"),
        ("perp", "xyz", "USDH"),
        ("spot", None, "USDC"),
        ("spot", None, "USDT0"),
        ("spot", None, "PURR"),
        ("outcome", None, "USDC"),
    }
    for d in (
        "Open Long",
        "Close Short",
        "Long > Short",
        "Short > Long",
        "Liquidated Cross Long",
        "Liquidated Cross Short",
        "Buy",
        "Sell",
        DUST_DIR,
        SETTLEMENT_DIR,
    ):
        assert dirs[d], f"no {d} fill"
    assert {"USDC", "USDH", "USDT0", "PURR", "HFUN", "JEFF", "HYPE"} <= set(fee_tokens)
    assert any(Decimal(f["closedPnl"]) != 0 for f in fills if f["dir"] == "Sell")
    assert any("deployerFee" in f for f in fills) and any("liquidation" in f for f in fills)
    for raw in fills[:: max(1, len(fills) // 2000)]:
        parse_fill(raw)


def test_system_fills_are_the_same_whatever_the_advance_steps() -> None:
    def make(now: int, days: float) -> Market:
        return Market.generate(5, wallets=16, days=days, now_ms=now, fills_per_day=(20, 300))

    end = NOW // DAY_MS * DAY_MS + SETTLE_AT_MS + 5
    at_once = make(end, 3)
    stepwise = make(end - 2 * DAY_MS, 1)
    # Steps landing exactly on the dust and settlement times, and between them.
    day0 = (end - 2 * DAY_MS) // DAY_MS * DAY_MS
    offsets = (DUST_AT_MS - 1, DUST_AT_MS, SETTLE_AT_MS, SETTLE_AT_MS + 1)
    stops = sorted({day0 + d * DAY_MS + o for d in range(3) for o in offsets} | {end})
    for stop in stops:
        stepwise.advance(stop)
    system = [f for f in all_fills(at_once) if f["dir"] in (DUST_DIR, SETTLEMENT_DIR)]
    assert {f["dir"] for f in system} == {DUST_DIR, SETTLEMENT_DIR}
    assert all_fills(stepwise) == all_fills(at_once)
