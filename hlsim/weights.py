"""Hyperliquid's request weights and a per-client weight budget.

From Hyperliquid's rate-limit docs: REST requests of one IP share 1200 weight
per minute; `/info` requests weigh 20, except a few light ones (2) and
`userRole` (60); `userFills`, `userFillsByTime`, `userFunding` and
`userNonFundingLedgerUpdates` (among others) weigh one more per 20 items
returned. The budget here is a token bucket refilled continuously at
`per_minute / 60` a second, so it can be made to bite quickly in tests by
lowering `per_minute`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

LIGHT = frozenset(
    {
        "l2Book",
        "allMids",
        "clearinghouseState",
        "orderStatus",
        "spotClearinghouseState",
        "exchangeStatus",
    }
)
PER_ITEM = frozenset(
    {
        "userFills",
        "userFillsByTime",
        "userFunding",
        "userNonFundingLedgerUpdates",
        "historicalOrders",
        "recentTrades",
    }
)
ITEMS_PER_WEIGHT = 20
DEFAULT_PER_MINUTE = 1200


def base_weight(request_type: str) -> int:
    if request_type in LIGHT:
        return 2
    if request_type == "userRole":
        return 60
    return 20


def weight(request_type: str, items: int) -> int:
    extra = items // ITEMS_PER_WEIGHT if request_type in PER_ITEM else 0
    return base_weight(request_type) + extra


class WeightBudget:
    """Per-client token buckets refilled at `per_minute`, holding at most `capacity`."""

    def __init__(
        self,
        per_minute: float = DEFAULT_PER_MINUTE,
        *,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.capacity = per_minute if capacity is None else capacity
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, client: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.per_minute / 60)
        self._buckets[client] = (tokens, now)
        return tokens

    def admits(self, client: str, request_type: str) -> bool:
        """Whether the client has budget left for the request's base weight."""
        with self._lock:
            return self._level(client) >= base_weight(request_type)

    def charge(self, client: str, spent: int) -> None:
        """Spends the answered request's full weight (items included); may go into debt."""
        with self._lock:
            tokens = self._level(client)
            self._buckets[client] = (tokens - spent, self._clock())

    def retry_after_s(self, client: str, request_type: str) -> float:
        with self._lock:
            missing = base_weight(request_type) - self._level(client)
        return max(0.0, missing * 60 / self.per_minute)
