"""Fair share of one API between callers and orgs: request rates and database slots.

Two limits, each per caller (the token's `sub`) and per org, and one per caller:
- a token bucket of requests (HL_ANALYTICS_*_RPS sustained, HL_ANALYTICS_*_BURST at
  once), taken by every authenticated request, cache hits included;
- a bucket of cost (HL_ANALYTICS_CALLER_COST_PER_S, HL_ANALYTICS_CALLER_COST_BURST),
  from which a document that runs GraphQL takes its cost (graph/cost.py): requests
  alone would let one caller run ten of the costliest documents a second;
- a count of requests using the database at the same time
  (HL_ANALYTICS_*_CONCURRENCY), held only while a request runs GraphQL.
Over either: `RateLimited` (429, `Retry-After`, code RATE_LIMITED).

In process memory for one instance; in Redis when REDIS_URL is set, so that every
instance counts against the same limits. Each check is one Lua script, atomic in
Redis: both buckets (caller and org) are taken together or not at all, and a slot is
a member of a sorted set scored by when its lease ends, so the slots of an instance
that died free themselves. When Redis cannot be reached the instance falls back to
its own counts (logged), rather than letting everything through or refusing all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio
import redis.exceptions

from graph.context import Caller
from graph.errors import ClientError
from hl_core.settings import Settings

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 1.0
# A slot outlives a request that never released it (an instance killed mid-request)
# by at most this long.
SLOT_LEASE_S = 60.0
MAX_BUCKETS = 100_000
_REDIS_ERRORS = (OSError, asyncio.TimeoutError, redis.exceptions.RedisError)


class RateLimited(ClientError):
    """Over a rate or concurrency limit: retry after `retry_after` seconds."""

    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True, slots=True)
class Limits:
    caller_rps: float
    caller_burst: int
    org_rps: float
    org_burst: int
    caller_concurrency: int
    org_concurrency: int
    caller_cost_per_s: float = 1e9
    caller_cost_burst: int = 10**9

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.hl_analytics_caller_rps,
            settings.hl_analytics_caller_burst,
            settings.hl_analytics_org_rps,
            settings.hl_analytics_org_burst,
            settings.hl_analytics_caller_concurrency,
            settings.hl_analytics_org_concurrency,
            settings.hl_analytics_caller_cost_per_s,
            # A bucket smaller than a document the budget admits would never admit it.
            max(settings.hl_analytics_caller_cost_burst, settings.hl_analytics_cost_budget),
        )


def _rate_message(who: str, setting: str) -> str:
    return f"too many requests from this {who} ({setting}); retry after the Retry-After seconds"


def _slot_message(who: str, setting: str) -> str:
    return (
        f"too many requests of this {who} are using the database at once ({setting}); "
        "retry after the Retry-After seconds"
    )


RATE_SETTINGS = ("caller", "HL_ANALYTICS_CALLER_RPS"), ("org", "HL_ANALYTICS_ORG_RPS")
SLOT_SETTINGS = (
    ("caller", "HL_ANALYTICS_CALLER_CONCURRENCY"),
    (
        "org",
        "HL_ANALYTICS_ORG_CONCURRENCY",
    ),
)

# KEYS: buckets; ARGV: tokens to take, then rate, burst of each. Returns {0, 0} when
# taken, else {index of the first short bucket (1-based), milliseconds until it holds
# enough}.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local amount = tonumber(ARGV[1])
local left = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  if tokens < amount then
    return {i, math.ceil((amount - tokens) * 1000 / rate)}
  end
  left[i] = tokens - amount
end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', key, 'tokens', tostring(left[i]), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
return {0, 0}
"""
# KEYS: slot sets; ARGV: member, lease ms, the limit of each. Returns 0 when the
# member holds a slot in every set, else the index of the first full set.
OCCUPY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then
    return i
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[1])
  redis.call('PEXPIRE', key, lease)
end
return 0
"""


class _LocalCounts:
    """The limits of one instance, in its memory (one event loop: no locks needed)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._slots: dict[str, int] = {}

    def take(
        self, keys: Sequence[str], rates: Sequence[tuple[float, int]], amount: float
    ) -> tuple[int, float]:
        now = time.monotonic()
        left: list[float] = []
        for i, (key, (rate, burst)) in enumerate(zip(keys, rates, strict=True)):
            tokens, at = self._buckets.get(key, (float(burst), now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens < amount:
                return i + 1, (amount - tokens) / rate
            left.append(tokens)
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.clear()  # a full bucket is what a forgotten one reads as
        for key, tokens in zip(keys, left, strict=True):
            self._buckets[key] = (tokens - amount, now)
        return 0, 0.0

    def occupy(self, keys: Sequence[str], limits: Sequence[int]) -> int:
        for i, (key, limit) in enumerate(zip(keys, limits, strict=True)):
            if self._slots.get(key, 0) >= limit:
                return i + 1
        for key in keys:
            self._slots[key] = self._slots.get(key, 0) + 1
        return 0

    def vacate(self, keys: Sequence[str]) -> None:
        for key in keys:
            held = self._slots.get(key, 0) - 1
            if held > 0:
                self._slots[key] = held
            else:
                self._slots.pop(key, None)


class Throttle:
    def __init__(self, limits: Limits, redis_url: str | None = None) -> None:
        self.limits = limits
        self._local = _LocalCounts()
        self._redis: redis.asyncio.Redis | None = (
            redis.asyncio.Redis.from_url(
                redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
            if redis_url
            else None
        )
        self._take = self._redis.register_script(TAKE) if self._redis else None
        self._occupy = self._redis.register_script(OCCUPY) if self._redis else None

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def _unavailable(self, exc: BaseException) -> None:
        log.warning(
            "rate limiter's Redis unavailable (%s); this instance counts alone",
            exc,
            extra={"action": "throttle_redis_error"},
        )

    async def admit(self, caller: Caller) -> None:
        """Takes a request from the caller's and the org's buckets, or raises RateLimited."""
        keys = [f"hla:rate:u:{caller.user_id}", f"hla:rate:o:{caller.org_id}"]
        rates = [
            (self.limits.caller_rps, self.limits.caller_burst),
            (self.limits.org_rps, self.limits.org_burst),
        ]
        empty, wait_s = await self._take_from(keys, rates, 1)
        if empty:
            who, setting = RATE_SETTINGS[empty - 1]
            raise RateLimited(_rate_message(who, setting), wait_s)

    async def spend(self, caller: Caller, cost: int) -> None:
        """Takes a document's cost from the caller's cost bucket, or raises RateLimited."""
        if cost <= 0:
            return
        rate = (self.limits.caller_cost_per_s, self.limits.caller_cost_burst)
        empty, wait_s = await self._take_from([f"hla:cost:u:{caller.user_id}"], [rate], cost)
        if empty:
            raise RateLimited(
                f"this caller's documents cost too much per second "
                f"(HL_ANALYTICS_CALLER_COST_PER_S; this one costs {cost}); "
                "retry after the Retry-After seconds",
                wait_s,
            )

    async def _take_from(
        self, keys: list[str], rates: list[tuple[float, int]], amount: float
    ) -> tuple[int, float]:
        empty, wait_s = 0, 0.0
        taken = False
        if self._take is not None:
            args = [str(amount), *(str(v) for pair in rates for v in pair)]
            try:
                empty, wait_ms = (int(v) for v in await self._take(keys=keys, args=args))
                wait_s, taken = wait_ms / 1000, True
            except _REDIS_ERRORS as exc:
                self._unavailable(exc)
        if not taken:
            empty, wait_s = self._local.take(keys, rates, amount)
        return empty, wait_s

    @asynccontextmanager
    async def slot(self, caller: Caller) -> AsyncIterator[None]:
        """Holds a database slot of the caller and of its org while the block runs,
        or raises RateLimited when either has none free."""
        keys = [f"hla:slots:u:{caller.user_id}", f"hla:slots:o:{caller.org_id}"]
        limits = [self.limits.caller_concurrency, self.limits.org_concurrency]
        member = os.urandom(12).hex()
        shared = False
        full = 0
        if self._occupy is not None:
            args = [member, str(int(SLOT_LEASE_S * 1000)), *(str(n) for n in limits)]
            try:
                full = int(await self._occupy(keys=keys, args=args))
                shared = True
            except _REDIS_ERRORS as exc:
                self._unavailable(exc)
        if not shared:
            full = self._local.occupy(keys, limits)
        if full:
            who, setting = SLOT_SETTINGS[full - 1]
            raise RateLimited(_slot_message(who, setting), 1)
        try:
            yield
        finally:
            # Shielded: a cancelled request still gives its slot back.
            await asyncio.shield(self._vacate(keys, member, shared))

    async def _vacate(self, keys: list[str], member: str, shared: bool) -> None:
        if not shared:
            self._local.vacate(keys)
            return
        assert self._redis is not None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, member)
                await pipe.execute()
        except _REDIS_ERRORS as exc:
            self._unavailable(exc)  # the slot frees itself when its lease ends
