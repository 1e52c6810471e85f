"""The simulated exchange for tests: started in this process, on a free port.

Reuse from any test module or conftest:

    from tests.simulator import simulator, start_simulator  # noqa: F401  (fixtures)

`simulator` is a small fixed market (`small_market()`); `start_simulator(market,
weight_per_minute=..., weight_capacity=..., clock=...,
short_pages=ShortPages(seed))` serves any market. Servers stop at the end
of the test. The weight budget defaults to far above Hyperliquid's 1200 a
minute, so fast test clients are not throttled unless a test asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hlsim.app import SimState
from hlsim.faults import ShortPages
from hlsim.market import Market
from hlsim.server import SimServer
from hlsim.weights import WeightBudget
from tests.factories import ms

FIXED_NOW_MS = ms(2026, 1, 15, 12)
GENEROUS_BUDGET = 10_000_000

StartSimulator = Callable[..., SimServer]


def small_market(seed: int = 7, *, wallets: int = 5, days: float = 3) -> Market:
    """A few wallets with a few hundred fills each, up to FIXED_NOW_MS."""
    return Market.generate(
        seed, wallets=wallets, days=days, now_ms=FIXED_NOW_MS, fills_per_day=(20, 200)
    )


@pytest.fixture
def start_simulator() -> Iterator[StartSimulator]:
    servers: list[SimServer] = []

    def start(
        market: Market | None = None,
        *,
        weight_per_minute: float = GENEROUS_BUDGET,
        weight_capacity: float | None = None,
        clock: Callable[[], int] | None = None,
        short_pages: ShortPages | None = None,
    ) -> SimServer:
        state = SimState(
            market or small_market(),
            budget=WeightBudget(weight_per_minute, capacity=weight_capacity),
            clock=clock,
            short_pages=short_pages,
        )
        server = SimServer(state).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def simulator(start_simulator: StartSimulator) -> SimServer:
    return start_simulator(small_market())


def max_in_window(times: list[float], window: float) -> int:
    """The most requests (sorted times, seconds) that fall within any `window` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
