"""The Hyperliquid client against the simulated exchange, over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from hlsim.faults import ShortPages
from hlsim.market import HORIZON, PAGE_LIMIT, Market
from hlsim.server import SimServer
from jobs.errors import HyperliquidRejected, HyperliquidUnavailable
from jobs.hl_client import SMALLEST_CUT, FillPage, HyperliquidClient
from jobs.hl_parse import parse_fill
from jobs.ratelimit import LocalRateLimiter
from storage.fills import identity
from tests.simulator import FIXED_NOW_MS, StartSimulator

MINUTE = 60_000


def client(server: SimServer, **kwargs: Any) -> HyperliquidClient:
    options: dict[str, Any] = {"timeout_s": 2.0, "backoff_s": 0.01, "max_backoff_s": 0.05}
    options.update(kwargs)
    return HyperliquidClient(server.url, limiter=LocalRateLimiter(1000), **options)


async def collect(c: HyperliquidClient, address: str, start: int = 0) -> list[FillPage]:
    pages = [page async for page in c.fill_pages(address, start, FIXED_NOW_MS)]
    return pages


def keys(raws: list[Any]) -> list[tuple[int, int]]:
    return [raw_key(r) for r in raws]


def raw_key(raw: Any) -> tuple[int, int, int, str]:
    """A raw fill's identity, as `storage.fills.identity` gives a parsed one's."""
    return (raw["tid"], raw["oid"], raw["time"], raw["coin"])


def ordered_quiet_wallet(market: Market, fills: int, start: int, step_ms: int = 1000) -> str:
    address = market.add_wallet()
    for i in range(fills):
        market.add_fill(address, start + i * step_ms)
    return address


async def test_page_boundary_inside_a_burst_loses_and_duplicates_nothing(
    start_simulator: StartSimulator,
) -> None:
    market = Market(1, now_ms=FIXED_NOW_MS)
    base = FIXED_NOW_MS - 10 * MINUTE
    address = ordered_quiet_wallet(market, PAGE_LIMIT - 10, base, step_ms=100)
    burst_ms = base + PAGE_LIMIT * 100
    market.add_burst(address, burst_ms, 40)  # the 2000th fill is the 10th of the burst
    for i in range(30):
        market.add_fill(address, burst_ms + 1 + i)
    server = start_simulator(market)

    async with client(server) as c:
        pages = await collect(c, address)

    delivered = [identity(f) for page in pages for f in page.fills]
    truth = keys(market.fills(address))
    assert len(delivered) == len(set(delivered)), "a fill was delivered twice"
    assert Counter(delivered) == Counter(truth)
    assert pages[0].complete_until_ms == burst_ms, "the first page must stop short of the burst"
    # The exchange's clock (its Date header, minus a second of safety) caps end_ms.
    assert pages[-1].complete_until_ms == FIXED_NOW_MS - 1000
    assert not any(page.truncated for page in pages)
    seen: set[tuple[int, int]] = set()
    for page in pages:
        seen.update(identity(f) for f in page.fills)
        before = {raw_key(r) for r in market.fills(address) if r["time"] < page.complete_until_ms}
        assert before <= seen, "complete_until_ms claimed fills not delivered yet"


async def test_a_pass_without_end_is_complete_up_to_the_exchanges_clock(
    start_simulator: StartSimulator,
) -> None:
    market = Market(5, now_ms=FIXED_NOW_MS)
    address = ordered_quiet_wallet(market, 20, FIXED_NOW_MS - 10 * MINUTE)
    server = start_simulator(market)
    async with client(server) as c:
        first = [page async for page in c.fill_pages(address, 0)]
        assert first[-1].complete_until_ms == FIXED_NOW_MS - 1000
        market.advance(FIXED_NOW_MS + 5 * MINUTE)
        late = market.add_fill(address, FIXED_NOW_MS + MINUTE)
        resumed = [page async for page in c.fill_pages(address, first[-1].complete_until_ms)]
    assert [identity(f) for p in resumed for f in p.fills] == [raw_key(late)]
    assert resumed[-1].complete_until_ms == FIXED_NOW_MS + 5 * MINUTE - 1000


async def test_a_wallet_beyond_the_10000_fill_horizon_is_flagged_truncated(
    start_simulator: StartSimulator,
) -> None:
    market = Market(2, now_ms=FIXED_NOW_MS)
    huge = market.add_wallet(fills_per_day=7_000, since_ms=FIXED_NOW_MS - 2 * 86_400_000)
    small = market.add_wallet(fills_per_day=300, since_ms=FIXED_NOW_MS - 86_400_000)
    server = start_simulator(market)
    assert len(market.fills(huge)) > HORIZON

    async with client(server) as c:
        huge_pages = await collect(c, huge)
        small_pages = await collect(c, small)

    delivered = [identity(f) for page in huge_pages for f in page.fills]
    assert Counter(delivered) == Counter(keys(market.fills(huge)[-HORIZON:]))
    assert huge_pages[-1].truncated
    assert not any(page.truncated for page in small_pages)
    assert len(market.fills(small)) == sum(len(p.fills) for p in small_pages)


async def test_a_page_full_of_one_millisecond_terminates(start_simulator: StartSimulator) -> None:
    market = Market(3, now_ms=FIXED_NOW_MS)
    address = market.add_wallet()
    burst_ms = FIXED_NOW_MS - MINUTE
    market.add_fill(address, burst_ms - 5)
    market.add_burst(address, burst_ms, PAGE_LIMIT + 300)
    after = [market.add_fill(address, burst_ms + 1 + i) for i in range(5)]
    server = start_simulator(market)

    async with client(server) as c:
        pages = await asyncio.wait_for(collect(c, address), timeout=30)

    delivered = {identity(f) for page in pages for f in page.fills}
    assert keys(after) and set(keys(after)) <= delivered, "fills after the burst were lost"
    assert sum(len(p.fills) for p in pages) == len(delivered)
    assert any(page.truncated for page in pages), "an unreachable part of a burst must be flagged"
    assert [p.complete_until_ms for p in pages] == sorted(p.complete_until_ms for p in pages)
    assert len(pages) <= 4


def assert_claims_only_what_was_seen(pages: list[FillPage], truth: list[Any]) -> None:
    """Each page's complete_until_ms covers only fills delivered by then, and never goes back."""
    seen: set[tuple[int, int]] = set()
    for page in pages:
        seen.update(identity(f) for f in page.fills)
        before = {raw_key(r) for r in truth if r["time"] < page.complete_until_ms}
        assert before <= seen, "complete_until_ms claimed fills not delivered yet"
    claims = [p.complete_until_ms for p in pages]
    assert claims == sorted(claims)


async def test_pages_cut_short_at_random_lose_and_double_nothing(
    start_simulator: StartSimulator,
) -> None:
    market = Market(11, now_ms=FIXED_NOW_MS)
    wallets = [
        market.add_wallet(fills_per_day=3_000, since_ms=FIXED_NOW_MS - 2 * 86_400_000)
        for _ in range(3)
    ]
    # Bursts below the smallest cut, so every fill stays within the API's reach.
    for i, address in enumerate(wallets):
        market.add_burst(address, FIXED_NOW_MS - (i + 2) * MINUTE, SMALLEST_CUT - 1)
    server = start_simulator(market, short_pages=ShortPages(3))

    async with client(server) as c:
        for address in wallets:
            truth = market.fills(address)
            assert 4_000 < len(truth) < HORIZON
            pages = await collect(c, address)
            delivered = [identity(f) for page in pages for f in page.fills]
            assert len(delivered) == len(set(delivered)), "a fill was delivered twice"
            assert Counter(delivered) == Counter(keys(truth)), "a fill was lost"
            assert len(pages) > len(truth) / PAGE_LIMIT + 1, "the pages were not cut short"
            assert_claims_only_what_was_seen(pages, truth)
            assert pages[-1].complete_until_ms == FIXED_NOW_MS - 1000
            assert not any(page.truncated for page in pages)


async def test_a_short_page_inside_one_millisecond_is_stepped_past(
    start_simulator: StartSimulator,
) -> None:
    # 300 fills, a 700-fill burst, 300 fills; every page cut at 700. The page asked
    # from the burst's millisecond holds nothing but that millisecond: re-asking from
    # it would bring the same page again, and ending there would lose what follows.
    market = Market(12, now_ms=FIXED_NOW_MS)
    base = FIXED_NOW_MS - 30 * MINUTE
    address = ordered_quiet_wallet(market, 300, base, step_ms=10)
    burst_ms = base + 300 * 10
    market.add_burst(address, burst_ms, 700)
    after = [market.add_fill(address, burst_ms + 1 + i) for i in range(300)]
    server = start_simulator(market, short_pages=ShortPages(low=700, high=700))

    async with client(server) as c:
        pages = await asyncio.wait_for(collect(c, address), timeout=30)

    delivered = [identity(f) for page in pages for f in page.fills]
    truth = market.fills(address)
    assert len(delivered) == len(set(delivered))
    assert Counter(delivered) == Counter(keys(truth)), "fills after the burst were lost"
    assert set(keys(after)) <= set(delivered)
    assert_claims_only_what_was_seen(pages, truth)
    # 700 fills in one millisecond fill a page the exchange may have cut: flagged.
    assert any(page.truncated for page in pages)


async def test_a_small_page_inside_one_millisecond_ends_the_pass(
    start_simulator: StartSimulator,
) -> None:
    market = Market(13, now_ms=FIXED_NOW_MS)
    address = market.add_wallet()
    burst_ms = FIXED_NOW_MS - MINUTE
    market.add_fill(address, burst_ms - 5)
    market.add_burst(address, burst_ms, 40)
    server = start_simulator(market, short_pages=ShortPages(5))

    async with client(server) as c:
        pages = await collect(c, address)
        server.state.log.clear()
        again = await collect(c, address, burst_ms)

    # Fewer fills than the smallest cut: the page is whole, and one request is the pass.
    assert [len(p.fills) for p in pages] == [41]
    assert not pages[0].truncated
    assert pages[0].complete_until_ms == FIXED_NOW_MS - 1000
    # A pass that starts at the burst's millisecond sees it whole too.
    assert [len(p.fills) for p in again] == [40]
    assert len(server.state.log.entries()) == 1


async def test_malformed_fills_are_rejected_and_the_rest_kept(
    start_simulator: StartSimulator,
) -> None:
    market = Market(4, now_ms=FIXED_NOW_MS)
    address = ordered_quiet_wallet(market, 50, FIXED_NOW_MS - 10 * MINUTE)
    good = market.fills(address)[0]
    market.add_raw(address, FIXED_NOW_MS - 5 * MINUTE, {**good, "tid": 77, "px": "1.2.3"})
    market.add_raw(address, FIXED_NOW_MS - 4 * MINUTE, {**good, "tid": 78, "side": "X"})
    market.add_raw(address, FIXED_NOW_MS - 3 * MINUTE, ["not", "a", "fill"])
    no_tid = {k: v for k, v in good.items() if k != "tid"}
    market.add_raw(address, FIXED_NOW_MS - 2 * MINUTE, no_tid)
    server = start_simulator(market)

    async with client(server) as c:
        pages = await collect(c, address)

    fills = [f for p in pages for f in p.fills]
    reasons = [reason for p in pages for _, reason in p.rejected]
    assert len(fills) == 50
    assert len(reasons) == 4
    assert any("px" in r for r in reasons) and any("side" in r for r in reasons)
    assert any("tid" in r for r in reasons) and any("JSON object" in r for r in reasons)


async def test_a_fill_corrupted_in_flight_is_rejected_alone(simulator: SimServer) -> None:
    address = simulator.market.wallets[-1]
    simulator.state.faults.add_json({"malformed": True, "type": "userFillsByTime"})
    async with client(simulator) as c:
        pages = await collect(c, address)
    rejected = [(raw, reason) for p in pages for raw, reason in p.rejected]
    assert len(rejected) == 1 and "px" in rejected[0][1]
    assert sum(len(p.fills) for p in pages) == len(simulator.market.fills(address)) - 1


async def test_429_500_timeouts_and_broken_bodies_are_retried_until_success(
    simulator: SimServer,
) -> None:
    address = simulator.market.wallets[0]
    for plan in (
        {"status": 429, "count": 2},
        {"status": 500, "count": 1},
        {"status": 503, "count": 1},
        {"delay_s": 1.5, "count": 1},
        {"truncate": True, "count": 1},
    ):
        simulator.state.faults.add_json(plan)

    async with client(simulator, timeout_s=0.5, max_attempts=8) as c:
        pages = await collect(c, address)

    assert sum(len(p.fills) for p in pages) == len(simulator.market.fills(address))
    statuses = [e.status for e in simulator.state.log.entries()]
    assert statuses[:4] == [429, 429, 500, 503]
    assert statuses.count(200) >= 2  # the slow answer (200, too late) and the truncated one
    assert statuses[-1] == 200


async def test_retry_after_is_honoured(simulator: SimServer) -> None:
    simulator.state.faults.add_json({"status": 429, "retry_after": 0.6})
    async with client(simulator) as c:
        started = time.monotonic()
        pairs = await c.spot_pairs()
        elapsed = time.monotonic() - started
    assert elapsed >= 0.55
    assert pairs["@1"] == "HFUN/USDC"


async def test_exhausted_retries_surface_as_unavailable(simulator: SimServer) -> None:
    simulator.state.faults.add_json({"status": 500, "count": 10})
    async with client(simulator, max_attempts=3) as c:
        with pytest.raises(HyperliquidUnavailable, match="failed 3 times"):
            await collect(c, simulator.market.wallets[0])
    assert [e.status for e in simulator.state.log.entries()] == [500, 500, 500]


async def test_a_long_retry_after_gives_up_at_once_and_holds_the_schedule(
    simulator: SimServer,
) -> None:
    simulator.state.faults.add_json({"status": 429, "retry_after": 30})
    limiter = LocalRateLimiter(1000)
    async with HyperliquidClient(simulator.url, limiter=limiter, max_retry_after_s=5) as c:
        with pytest.raises(HyperliquidUnavailable, match=r"failed 1 times .*Retry-After 30s"):
            await c.spot_pairs()
    assert len(simulator.state.log.entries()) == 1
    assert limiter._reserve(0.001) > 25, "other requests must wait out the Retry-After too"


async def test_a_connection_refused_is_retried_then_unavailable() -> None:
    c = HyperliquidClient(
        "http://127.0.0.1:9", limiter=LocalRateLimiter(1000), max_attempts=2, backoff_s=0.01
    )
    async with c:
        with pytest.raises(HyperliquidUnavailable, match="connection failed"):
            await c.spot_pairs()


async def test_a_non_retryable_4xx_fails_fast(simulator: SimServer) -> None:
    simulator.state.faults.add_json({"status": 400})
    async with client(simulator) as c:
        with pytest.raises(HyperliquidRejected, match="HTTP 400"):
            await collect(c, simulator.market.wallets[0])
        with pytest.raises(HyperliquidRejected, match="HTTP 422"):
            await collect(c, "0xnot-an-address")
    assert [e.status for e in simulator.state.log.entries()] == [400, 422]


async def test_the_weight_budget_answers_429_and_the_client_waits_it_out(
    start_simulator: StartSimulator,
) -> None:
    # 100 weight a second, at most 100 at once: 5 spotMeta requests (20 each) drain it.
    server = start_simulator(weight_per_minute=6000, weight_capacity=100)
    async with client(server, max_attempts=10) as c:
        results = await asyncio.gather(*(c.spot_pairs() for _ in range(10)))
    assert all(r["PURR/USDC"] == "PURR/USDC" for r in results)
    statuses = Counter(e.status for e in server.state.log.entries())
    assert statuses[200] == 10
    assert statuses[429] >= 1


async def test_latest_fills_parse(simulator: SimServer) -> None:
    address = simulator.market.wallets[1]
    async with client(simulator) as c:
        fills, rejected = await c.latest_fills(address)
    truth = simulator.market.fills(address)[::-1][:PAGE_LIMIT]
    assert not rejected
    assert fills == [parse_fill(raw) for raw in truth]


async def test_extra_dex_passes_ask_per_dex_and_claim_only_what_all_passes_saw(
    start_simulator: StartSimulator,
) -> None:
    market = Market(21, now_ms=FIXED_NOW_MS)
    address = market.add_wallet()
    base = FIXED_NOW_MS - 30 * MINUTE
    for i in range(30):
        market.add_fill(address, base + i * 1000, coin="BTC")
        market.add_fill(address, base + i * 1000 + 500, coin="xyz:TSLA")
    server = start_simulator(market)

    async with client(server, dexes=["xyz"]) as c:
        pages = await collect(c, address, base)

    delivered = [identity(f) for page in pages for f in page.fills]
    assert Counter(delivered) == Counter(keys(market.fills(address))), "each fill once"
    entries = server.state.log.entries()
    assert [e.type for e in entries] == ["userFillsByTime", "userFillsByTime"]
    # The documented request answers every fill; the dex pass brings nothing new, and only
    # its pages may claim time, capped by what the first pass saw.
    assert [len(p.fills) for p in pages] == [60, 0]
    assert [p.complete_until_ms for p in pages] == [base, FIXED_NOW_MS - 1000]
