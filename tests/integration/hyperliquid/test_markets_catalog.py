"""jobs.markets against the simulated exchange: what each coin is quoted in, from the
metadata requests Hyperliquid documents (`spotMeta`, `meta` with `dex`, `perpDexs`)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hlsim.server import SimServer
from jobs.hl_client import HyperliquidClient
from jobs.markets import MarketCatalog
from jobs.ratelimit import LocalRateLimiter
from storage.markets import Resolution
from tests.simulator import StartSimulator


def client(server: SimServer, **kwargs: Any) -> HyperliquidClient:
    options: dict[str, Any] = {"timeout_s": 2.0, "backoff_s": 0.01, "max_backoff_s": 0.05}
    options.update(kwargs)
    return HyperliquidClient(server.url, limiter=LocalRateLimiter(1000), **options)


def asked(server: SimServer) -> list[str]:
    return [e.type for e in server.state.log.entries()]


async def test_every_kind_resolves_to_its_quote_token(simulator: SimServer) -> None:
    catalog = MarketCatalog()
    coins = ["BTC", "#10", "PURR/USDC", "@1", "@3", "@4", "xyz:TSLA", "xyz:NVDA"]
    async with client(simulator) as c:
        plan = await catalog.plan(c, coins)
    assert plan.failed == []
    assert {r.coin: r for r in plan.resolved} == {
        "BTC": Resolution("BTC", "BTC", "USDC", "BTC"),
        "#10": Resolution("#10", "+10", "USDC", "#10"),
        "PURR/USDC": Resolution("PURR/USDC", "PURR", "USDC", "PURR/USDC"),
        "@1": Resolution("@1", "HFUN", "USDC", "HFUN/USDC"),
        "@3": Resolution("@3", "HYPE", "USDT0", "HYPE/USDT0"),
        "@4": Resolution("@4", "JEFF", "PURR", "JEFF/PURR"),
        "xyz:TSLA": Resolution("xyz:TSLA", "TSLA", "USDH", "xyz:TSLA"),
        "xyz:NVDA": Resolution("xyz:NVDA", "NVDA", "USDH", "xyz:NVDA"),
    }
    # Default-dex perps and outcomes need no request; spotMeta and the dex's meta once each.
    assert sorted(asked(simulator)) == ["meta", "spotMeta"]


async def test_an_unknown_coin_is_unresolved_logged_once_and_asked_again_only_when_stale(
    simulator: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jobs.markets")
    catalog = MarketCatalog(refresh_after_s=3600)
    async with client(simulator) as c:
        first = await catalog.plan(c, ["@999", "@1"])
        second = await catalog.plan(c, ["@999"])
        catalog.refresh_after_s = 0
        third = await catalog.plan(c, ["@999"])
    assert first.failed == second.failed == third.failed == ["@999"]
    assert [r.coin for r in first.resolved] == ["@1"]
    assert "@999: unknown to Hyperliquid's metadata" in first.error
    assert asked(simulator) == ["spotMeta", "spotMeta"], "asked again only once stale"
    logged = [r for r in caplog.records if getattr(r, "action", None) == "market_unresolved"]
    assert len(logged) == 1


async def test_an_unknown_dex_or_a_failing_exchange_leaves_coins_unresolved(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator()
    server.state.faults.add_json({"status": 500, "count": 50, "type": "spotMeta"})
    catalog = MarketCatalog()
    async with client(server, max_attempts=2) as c:
        plan = await catalog.plan(c, ["abc:FOO", "@1", "BTC"])
    assert sorted(plan.failed) == ["@1", "abc:FOO"]
    assert [r.coin for r in plan.resolved] == ["BTC"]
    assert "HTTP 422" in plan.error and "HTTP 500" in plan.error


async def test_all_dexes_come_from_perp_dexs(simulator: SimServer) -> None:
    async with client(simulator) as c:
        assert await MarketCatalog().dex_names(c) == ["xyz"]
