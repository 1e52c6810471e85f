"""The response cache: a repeated (org, document, variables) is answered without GraphQL.

aiocache holds the entries: in process memory by default, in Redis when
REDIS_URL is set so several API instances share them. A key is made of the org,
the org's current version, the UTC day (day series end today), and a digest of
the request (which names the fields and their arguments); its TTL is the
smallest of its root fields' (summary 60 s, global metrics 300 s, top wallets
120 s). When an org's numbers change as a whole (tracking, labels, a change
without a day), its version changes, so none of its old keys is ever read again
(they expire on their own); in Redis, a version key that is missing starts anew
rather than reading as a default. Every answer also carries the all-orgs version,
changed when notifications may have been missed (the change listener's link was
down); in Redis it is kept per database (`v:all:<database identity>`), so that
deployments, or test databases, sharing one Redis do not drop each other's answers.

A change of some of an org's days (a rollup) hides only the answers that read
one of those days: each stored answer carries the org's change sequence number
taken before it was computed (its stamp) and the day ranges its fields read
(`Answer.days`, None: every day); a hit is refused when a change of the org
newer than the stamp touched a day inside one of those ranges. The org's
changes (sequence number and, per day, the number of the last change) are kept
in memory, or in one Redis hash per org (`c:<org>`, shared by every instance,
with a generation that starts anew when the hash is missing, so a lost hash
never makes an old answer valid). Changes older than `CHANGE_MEMORY_S` are
forgotten: no answer can be that old (the longest TTL plus a computation). Concurrent misses for one
query's key compute once: later callers wait for the first one's answer. In memory
the entries are bounded by bytes (HL_ANALYTICS_CACHE_MAX_BYTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import redis.exceptions
from aiocache import RedisCache
from aiocache.serializers import NullSerializer

from graph.memory_cache import BoundedMemoryCache
from graph.singleflight import SingleFlight

log = logging.getLogger(__name__)

TTL_S = {"dashboardSummary": 60, "globalMetrics": 300, "topWallets": 120, "wallet": 60}
DEFAULT_TTL_S = 60
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # HL_ANALYTICS_CACHE_MAX_BYTES
# How long an org's per-day changes are remembered: twice the longest TTL.
CHANGE_MEMORY_S = 2 * max(TTL_S.values())
_HEADER_END = b"\n"
REDIS_TIMEOUT_S = 1.0
_CACHE_ERRORS = (OSError, asyncio.TimeoutError, redis.exceptions.RedisError)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response to send: its status, JSON body, and for how long it may be reused."""

    status: int
    body: bytes
    ttl: int | None = None
    # The day ranges the answer read (first, last), or None: it may depend on any day.
    days: tuple[tuple[date, date], ...] | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """What is known of an org's changes: a generation, the last sequence number, and
    per changed day the sequence number of its last change."""

    generation: str
    seq: int
    days: dict[date, int]

    def touched(self, stamp: int, ranges: tuple[tuple[date, date], ...] | None) -> bool:
        """Whether a change after `stamp` touched one of the ranges (None: any day)."""
        if ranges is None:
            return self.seq > stamp
        return any(
            seq > stamp and any(lo <= day <= hi for lo, hi in ranges)
            for day, seq in self.days.items()
        )


def _encode(org_id: uuid.UUID, changes: Changes, answer: Answer) -> bytes:
    ranges = (
        "*"
        if answer.days is None
        else ",".join(f"{lo.isoformat()}/{hi.isoformat()}" for lo, hi in answer.days)
    )
    header = f"{org_id} {changes.generation} {changes.seq} {ranges}".encode()
    return header + _HEADER_END + answer.body


Ranges = tuple[tuple[date, date], ...] | None


def _decode(value: bytes) -> tuple[uuid.UUID, str, int, Ranges, bytes]:
    header, _, body = value.partition(_HEADER_END)
    org, generation, stamp, ranges = header.decode().split(" ")
    days = (
        None
        if ranges == "*"
        else tuple(
            (date.fromisoformat(lo), date.fromisoformat(hi))
            for lo, hi in (part.split("/") for part in ranges.split(",") if part)
        )
    )
    return uuid.UUID(org), generation, int(stamp), days, body


def ttl_for(root_fields: frozenset[str]) -> int:
    return min((TTL_S.get(name, DEFAULT_TTL_S) for name in root_fields), default=DEFAULT_TTL_S)


class _RedisCache(RedisCache):  # type: ignore[misc]
    """aiocache 0.12's Redis backend with the calls redis-py 6+ deprecates replaced."""

    async def _set(
        self,
        key: str,
        value: bytes,
        ttl: int | None = None,
        _cas_token: object = None,
        _conn: object = None,
    ) -> object:
        if _cas_token is not None:
            return await super()._set(key, value, ttl, _cas_token, _conn)
        return await self.client.set(key, value, ex=ttl)

    async def _close(self, *args: object, _conn: object = None, **kwargs: object) -> None:
        await self.client.aclose()


def _redis(url: str) -> RedisCache:
    parts = urlsplit(url)
    db = parts.path.strip("/") or "0"
    return _RedisCache(
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(db),
        password=parts.password,
        ssl=parts.scheme == "rediss",
        namespace="hla",
        serializer=NullSerializer(encoding=None),
        timeout=REDIS_TIMEOUT_S,
    )


class ResponseCache:
    def __init__(
        self,
        redis_url: str | None = None,
        *,
        enabled: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.enabled = enabled
        self.shared = redis_url is not None
        # In memory: bounded by bytes (graph/memory_cache.py).
        self.backend: Any = _redis(redis_url) if redis_url else BoundedMemoryCache(max_bytes)
        self._versions: dict[uuid.UUID, str] = {}
        # The all-orgs version's name in Redis: the database's, once the listener knows it.
        self._all = "v:all"
        # Part of every key (in memory): changed when notifications may have been missed.
        self._epoch = uuid.uuid4().hex[:8]
        self._inflight: SingleFlight[str, Answer] = SingleFlight()
        # In memory: per org, the sequence number and per day (seq, monotonic time).
        self._generation = uuid.uuid4().hex[:8]
        self._seq: dict[uuid.UUID, int] = {}
        self._day_changes: dict[uuid.UUID, dict[date, tuple[int, float]]] = {}

    async def close(self) -> None:
        await self.backend.close()

    async def version(self, org_id: uuid.UUID) -> str:
        """The org's version and the all-orgs version, as one key part."""
        if not self.shared:
            return f"{self._versions.get(org_id, '0')}:{self._epoch}"
        names = [f"v:{org_id}", self._all]
        try:
            values = await self.backend.multi_get(names)
            if not all(values):
                # A version key that is missing (never set, evicted, deleted) must not
                # read as an old default: answers cached under it may be stale. It
                # starts anew, the same on every instance (the first one to write wins).
                for name, value in zip(names, values, strict=True):
                    if not value:
                        await self._start_version(name)
                values = await self.backend.multi_get(names)
        except _CACHE_ERRORS as exc:
            log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})
            return uuid.uuid4().hex  # a key nobody has: a miss
        if not all(values):
            return uuid.uuid4().hex
        return ":".join(v.decode() for v in values)

    async def _start_version(self, name: str) -> None:
        with contextlib.suppress(ValueError):  # another instance started it first
            await self.backend.add(name, uuid.uuid4().hex.encode())

    async def _set_version(self, name: str, version: str) -> None:
        try:
            await self.backend.set(name, version.encode())
        except _CACHE_ERRORS as exc:
            log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})

    async def changes(self, org_id: uuid.UUID) -> Changes:
        """The org's changes as known now (in Redis: shared by every instance)."""
        if not self.shared:
            self._forget_old(org_id)
            days = {d: seq for d, (seq, _) in self._day_changes.get(org_id, {}).items()}
            return Changes(self._generation, self._seq.get(org_id, 0), days)
        name = f"c:{org_id}"
        try:
            fields = await self.backend.client.hgetall(self.backend.build_key(name))
            if b"gen" not in fields:
                await self.backend.client.hsetnx(
                    self.backend.build_key(name), "gen", uuid.uuid4().hex[:8]
                )
                fields = await self.backend.client.hgetall(self.backend.build_key(name))
        except _CACHE_ERRORS as exc:
            log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})
            return Changes(uuid.uuid4().hex, 0, {})  # a generation nobody has: a miss
        days = {
            date.fromisoformat(k.decode()): int(v)
            for k, v in fields.items()
            if k not in (b"gen", b"seq")
        }
        return Changes(fields[b"gen"].decode(), int(fields.get(b"seq", 0)), days)

    def _forget_old(self, org_id: uuid.UUID) -> None:
        days = self._day_changes.get(org_id)
        if days:
            horizon = time.monotonic() - CHANGE_MEMORY_S
            for day in [d for d, (_, at) in days.items() if at < horizon]:
                del days[day]

    async def invalidate_days(self, org_id: uuid.UUID, days: Iterable[date]) -> None:
        """Hides the org's cached answers that read one of `days`, on every instance."""
        changed = sorted(set(days))
        if not changed:
            return
        if not self.shared:
            seq = self._seq.get(org_id, 0) + 1
            self._seq[org_id] = seq
            now = time.monotonic()
            known = self._day_changes.setdefault(org_id, {})
            for day in changed:
                known[day] = (seq, now)
        else:
            name = self.backend.build_key(f"c:{org_id}")
            try:
                seq = await self.backend.client.hincrby(name, "seq", 1)
                await self.backend.client.hset(
                    name, mapping={day.isoformat(): seq for day in changed}
                )
                # Forgotten as a whole once no answer can be older (refreshed by each change).
                await self.backend.client.expire(name, CHANGE_MEMORY_S)
            except _CACHE_ERRORS as exc:
                log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})
                await self.invalidate(org_id)
                return
        log.info(
            "cache invalidated",
            extra={
                "action": "cache_invalidated",
                "org_id": str(org_id),
                "days": f"{changed[0]}..{changed[-1]} ({len(changed)})",
            },
        )

    async def invalidate(self, org_id: uuid.UUID) -> None:
        """Hides every cached answer of the org, on every instance sharing the cache."""
        version = uuid.uuid4().hex
        self._versions[org_id] = version
        if self.shared:
            await self._set_version(f"v:{org_id}", version)
        log.info("cache invalidated", extra={"action": "cache_invalidated", "org_id": str(org_id)})

    async def invalidate_all(self, database: str | None = None) -> None:
        """Hides every cached answer of `database` (its identity; None: the one known) on
        every instance sharing the cache (after the notification link was down)."""
        if database is not None:
            self._all = f"v:all:{database}"
        self._epoch = uuid.uuid4().hex[:8]
        self._versions.clear()
        if self.shared:
            await self._set_version(self._all, self._epoch)

    async def key(self, org_id: uuid.UUID, day: str, digest: str) -> str:
        return f"r:{org_id}:{await self.version(org_id)}:{day}:{digest}"

    async def get(self, key: str) -> bytes | None:
        """The answer stored under `key`, unless a change since it touched a day it read."""
        try:
            value: bytes | None = await self.backend.get(key)
        except _CACHE_ERRORS as exc:
            log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})
            return None
        if value is None:
            return None
        org_id, generation, stamp, days, body = _decode(value)
        changes = await self.changes(org_id)
        if changes.generation != generation or changes.seq < stamp:
            return None  # the changes it was stamped against are gone
        return None if changes.touched(stamp, days) else body

    async def _store(self, key: str, answer: Answer, changes: Changes) -> None:
        if answer.ttl is None or answer.status != 200:
            return
        value = _encode(_org_of(key), changes, answer)
        try:
            await self.backend.set(key, value, ttl=answer.ttl)
        except _CACHE_ERRORS as exc:
            log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})

    async def compute_once(
        self, key: str, compute: Callable[[], Awaitable[Answer]]
    ) -> tuple[Answer, bool]:
        """The answer for `key`, computed by the first of concurrent callers only;
        True when it was another caller's."""

        async def compute_and_store() -> Answer:
            # Taken before the answer's reads: a change landing meanwhile is newer.
            changes = await self.changes(_org_of(key))
            answer = await compute()
            await self._store(key, answer, changes)
            return answer

        return await self._inflight.run(key, compute_and_store)


def _org_of(key: str) -> uuid.UUID:
    """The org of a key made by `ResponseCache.key`."""
    return uuid.UUID(key.split(":", 2)[1])
