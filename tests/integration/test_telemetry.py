"""Prometheus metrics count what happened: Hyperliquid requests and 429s, API requests."""

from __future__ import annotations

from prometheus_client import REGISTRY

from hlsim.market import Market
from jobs.hl_client import HyperliquidClient
from jobs.ratelimit import LocalRateLimiter
from tests.simulator import FIXED_NOW_MS, StartSimulator, start_simulator

__all__ = ["start_simulator"]  # the fixture


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_hyperliquid_requests_and_429s_are_counted(start_simulator: StartSimulator) -> None:
    market = Market(5, now_ms=FIXED_NOW_MS)
    address = market.add_wallet()
    market.add_fill(address, FIXED_NOW_MS - 60_000)
    server = start_simulator(market)
    server.state.faults.add_json({"status": 429, "count": 2})
    ok = {"type": "userFillsByTime", "status": "200"}
    limited = {"type": "userFillsByTime", "status": "429"}
    before = (
        _sample("hla_hyperliquid_requests_total", ok),
        _sample("hla_hyperliquid_requests_total", limited),
        _sample("hla_hyperliquid_429_total"),
    )
    client = HyperliquidClient(
        server.url, limiter=LocalRateLimiter(1000), backoff_s=0.01, max_backoff_s=0.02
    )
    async with client:
        pages = [p async for p in client.fill_pages(address, 0, FIXED_NOW_MS)]
    assert sum(len(p.fills) for p in pages) == 1
    after = (
        _sample("hla_hyperliquid_requests_total", ok),
        _sample("hla_hyperliquid_requests_total", limited),
        _sample("hla_hyperliquid_429_total"),
    )
    assert after[0] - before[0] == len(pages)
    assert after[1] - before[1] == 2
    assert after[2] - before[2] == 2
