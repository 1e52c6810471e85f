"""One request budget for Hyperliquid's API, shared by every worker process and host.

Mechanism: a schedule of slots, not a bucket that callers poll. Each request
reserves the next free slot in one atomic step (PostgreSQL: one
`INSERT … ON CONFLICT DO UPDATE … RETURNING` in `storage/ratelimit.py`; Redis:
one Lua script), then sleeps until its slot. Slots are `1 / rps` seconds apart,
so however many processes ask, requests leave at most `rps` a second, and the
clock that decides is the shared store's, not each host's.

Weights: Hyperliquid charges an IP 1200 weight a minute; the fill requests
weigh 20, plus 1 per 20 fills returned. One slot is one 20-weight request, so
the default of 1 slot a second is exactly the documented budget. The extra
weight of a large answer is learnt only after it arrives, and is paid by
pushing the schedule back (`charge`), delaying whoever asks next.

Fairness across wallets: slots are handed out first come, first served, and a
wallet's pass asks for its next page only after its previous page arrived, so
a wallet holds at most one place in the queue. With W wallets waiting, each
gets one slot in every W: a wallet with 10,000 fills cannot starve the others.

Redis is used through redis-py (the client aiocache already depends on);
PostgreSQL through psycopg. Both stores are reached from a worker thread with a
synchronous connection, which survives the caller's event loop being replaced
(Dramatiq actors run each job in a fresh `asyncio.run`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Protocol

import psycopg
import redis

from jobs.errors import RateLimiterUnavailable
from storage import ratelimit as schedule
from storage.db import connect, errors
from storage.errors import DatabaseUnavailable, MigrationError, first_line

log = logging.getLogger(__name__)

LIMITER_NAME = "hyperliquid"
STANDARD_WEIGHT = 20  # the weight of one info request, the unit of a slot


class RateLimiter(Protocol):
    rps: float  # slots (standard 20-weight requests) per second

    async def acquire(self, key: str, cost: float = 1.0) -> None:
        """Waits for a slot worth `cost` requests; `key` (a wallet) is for logs."""

    async def charge(self, cost: float) -> None:
        """Pays `cost` more requests' worth after the fact, delaying later requests."""

    async def pause(self, seconds: float) -> None:
        """Holds every slot back until `seconds` from now (a 429's Retry-After)."""

    async def aclose(self) -> None: ...


class _Scheduled:
    """Reserve a slot in a shared store, then sleep until it comes."""

    def __init__(self, rps: float) -> None:
        if rps <= 0:
            raise ValueError("rps must be positive")
        self.rps = rps
        self._lock = threading.Lock()

    def _reserve(self, cost_s: float) -> float:
        raise NotImplementedError

    def _charge(self, cost_s: float) -> None:
        raise NotImplementedError

    def _pause(self, seconds: float) -> None:
        raise NotImplementedError

    async def acquire(self, key: str, cost: float = 1.0) -> None:
        wait = await asyncio.to_thread(self._reserve, cost / self.rps)
        if wait > 0:
            log.debug("waiting %.3fs for a request slot for %s", wait, key)
            await asyncio.sleep(wait)

    async def charge(self, cost: float) -> None:
        if cost > 0:
            await asyncio.to_thread(self._charge, cost / self.rps)

    async def pause(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.to_thread(self._pause, seconds)


class LocalRateLimiter(_Scheduled):
    """The schedule in this process only: for a single process, tests and tools."""

    def __init__(self, rps: float) -> None:
        super().__init__(rps)
        self._next = 0.0

    def _reserve(self, cost_s: float) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + cost_s
            return slot - now

    def _charge(self, cost_s: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic()) + cost_s

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)

    async def aclose(self) -> None:
        return None


class PostgresRateLimiter(_Scheduled):
    """The schedule in PostgreSQL's `hl_rate_limit` row; one connection, reopened on failure."""

    def __init__(self, database_url: str, rps: float, *, name: str = LIMITER_NAME) -> None:
        super().__init__(rps)
        self.database_url = database_url
        self.name = name
        self._conn: psycopg.Connection | None = None

    def _run(self, call: Any, cost_s: float) -> Any:
        with self._lock:
            for attempt in (1, 2):
                try:
                    with errors():
                        if self._conn is None or self._conn.closed:
                            self._conn = connect(
                                self.database_url, autocommit=True, application_name="hl-ratelimit"
                            )
                        return call(self._conn, self.name, cost_s)
                except MigrationError:
                    raise RateLimiterUnavailable(
                        "the rate limiter's table is missing: run `hl-analytics migrate`"
                    ) from None
                except DatabaseUnavailable as exc:
                    # A restarted database drops the connection: reconnect once before failing.
                    self._close()
                    if attempt == 2:
                        raise RateLimiterUnavailable(
                            f"the rate limiter's database is unreachable ({first_line(exc)}); "
                            "check DATABASE_URL"
                        ) from None
        return None

    def _reserve(self, cost_s: float) -> float:
        return float(self._run(schedule.reserve_slot, cost_s))

    def _charge(self, cost_s: float) -> None:
        self._run(schedule.charge, cost_s)

    def _pause(self, seconds: float) -> None:
        self._run(schedule.pause, seconds)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        with self._lock:
            self._close()


# KEYS[1] holds the next free slot in microseconds of Redis's clock. ARGV[1] is
# microseconds; ARGV[2] the operation: reserve (returns the wait), charge, pause.
_SCHEDULE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local us = tonumber(ARGV[1])
local slot = math.max(nxt, now)
local after = slot + us
if ARGV[2] == 'pause' then after = math.max(nxt, now + us) end
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', 3600000)
if ARGV[2] == 'reserve' then return slot - now end
return 0
"""


class RedisRateLimiter(_Scheduled):
    """The schedule in one Redis key, advanced by a Lua script (atomic on the server)."""

    def __init__(self, redis_url: str, rps: float, *, name: str = LIMITER_NAME) -> None:
        super().__init__(rps)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._redis.register_script(_SCHEDULE_LUA)
        self.key = f"hl-analytics:ratelimit:{name}"

    def _call(self, seconds: float, operation: str) -> float:
        try:
            waited_us = self._script(keys=[self.key], args=[int(seconds * 1e6), operation])
        except redis.RedisError as exc:
            raise RateLimiterUnavailable(
                f"the rate limiter's Redis is unreachable ({exc}); check REDIS_URL"
            ) from None
        return int(waited_us) / 1e6

    def _reserve(self, cost_s: float) -> float:
        return self._call(cost_s, "reserve")

    def _charge(self, cost_s: float) -> None:
        self._call(cost_s, "charge")

    def _pause(self, seconds: float) -> None:
        self._call(seconds, "pause")

    async def aclose(self) -> None:
        await asyncio.to_thread(self._redis.close)
