"""What a resolver gets: the verified caller, the shared services, the UTC day.

The org id comes only from here, i.e. from the caller's profile: no resolver
takes an org id argument.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import psycopg

from hl_core.settings import DEFAULT_MAX_WALLETS_PER_ORG, DEFAULT_USD_TOKENS
from storage.db import async_errors
from storage.lending import GuardedPool, RequestConnection

if TYPE_CHECKING:
    from graph.cache import ResponseCache
    from graph.fanout import Feed


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    org_id: uuid.UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Services:
    """Opened once in the app's lifespan and shared by every request."""

    pool: GuardedPool
    database_url: str
    pool_timeout: float
    cache: ResponseCache
    # HYPERLIQUID_USD_TOKENS: what prices a fill the API lists (the rollups use the same).
    usd_tokens: tuple[str, ...] = DEFAULT_USD_TOKENS
    # HL_ANALYTICS_MAX_WALLETS_PER_ORG: what `trackWallets` may not go beyond.
    max_wallets_per_org: int = DEFAULT_MAX_WALLETS_PER_ORG


class DaysRead:
    """The UTC days a request's fields read: what a cached answer depends on
    (graph/cache.py). A field that reads without saying which days depends on all."""

    __slots__ = ("_all", "_ranges")

    def __init__(self) -> None:
        self._ranges: list[tuple[date, date]] = []
        self._all = False

    def add(self, days: tuple[date, date] | None) -> None:
        if days is None:
            self._all = True
        else:
            self._ranges.append(days)

    def ranges(self) -> tuple[tuple[date, date], ...] | None:
        """The ranges read, or None when the answer may depend on any day."""
        return None if self._all or not self._ranges else tuple(sorted(set(self._ranges)))


@dataclass(frozen=True, slots=True)
class RequestContext:
    caller: Caller
    services: Services
    today: date
    request_id: str
    # The request's one connection, shared by its fields one at a time.
    lease: RequestConnection
    days_read: DaysRead = field(default_factory=DaysRead)

    @asynccontextmanager
    async def connection(
        self, days: tuple[date, date] | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The request's connection, inside the storage error boundary. `days`: the only
        UTC days (first, last) what is read depends on; None: any day."""
        self.days_read.add(days)
        async with async_errors(), self.lease.use() as conn:
            yield conn


@dataclass(frozen=True, slots=True)
class SubscriptionContext:
    """What a subscription gets: the caller authenticated at `connection_init`, and the
    way to its org's events (a bounded feed owned by the socket)."""

    caller: Caller
    open_feed: Callable[[], Feed]
