"""The response cache: a repeated (org, document, variables) is answered without GraphQL.

aiocache holds the entries: in process memory by default, in Redis when
REDIS_URL is set so several API instances share them. A key is made of the org,
the org's current version, the UTC day (day series end today), and a digest of
the request (which names the fields and their arguments); its TTL is the
smallest of its root fields' (summary 60 s, global metrics 300 s, top wallets
120 s). When an org's numbers change, its version changes, so none of its old
keys is ever read again (they expire on their own); in Redis, a version key that
is missing starts anew rather than reading as a default. Concurrent misses for one
query's key compute once: later callers wait for the first one's answer. In memory
the entries are bounded by bytes (HL_ANALYTICS_CACHE_MAX_BYTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
REDIS_TIMEOUT_S = 1.0
_CACHE_ERRORS = (OSError, asyncio.TimeoutError, redis.exceptions.RedisError)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response to send: its status, JSON body, and for how long it may be reused."""

    status: int
    body: bytes
    ttl: int | None = None


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
        # Part of every key (in memory): changed when notifications may have been missed.
        self._epoch = uuid.uuid4().hex[:8]
        self._inflight: SingleFlight[str, Answer] = SingleFlight()

    async def close(self) -> None:
        await self.backend.close()

    async def version(self, org_id: uuid.UUID) -> str:
        """The org's version and the all-orgs version, as one key part."""
        if not self.shared:
            return f"{self._versions.get(org_id, '0')}:{self._epoch}"
        names = [f"v:{org_id}", "v:all"]
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

    async def invalidate(self, org_id: uuid.UUID) -> None:
        """Hides every cached answer of the org, on every instance sharing the cache."""
        version = uuid.uuid4().hex
        self._versions[org_id] = version
        if self.shared:
            await self._set_version(f"v:{org_id}", version)
        log.info("cache invalidated", extra={"action": "cache_invalidated", "org_id": str(org_id)})

    async def invalidate_all(self) -> None:
        """Hides every cached answer (after the notification link was down)."""
        self._epoch = uuid.uuid4().hex[:8]
        self._versions.clear()
        if self.shared:
            await self._set_version("v:all", self._epoch)

    async def key(self, org_id: uuid.UUID, day: str, digest: str) -> str:
        return f"r:{org_id}:{await self.version(org_id)}:{day}:{digest}"

    async def get(self, key: str) -> bytes | None:
        try:
            value: bytes | None = await self.backend.get(key)
        except _CACHE_ERRORS as exc:
            log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})
            return None
        return value

    async def _store(self, key: str, answer: Answer) -> None:
        if answer.ttl is None or answer.status != 200:
            return
        try:
            await self.backend.set(key, answer.body, ttl=answer.ttl)
        except _CACHE_ERRORS as exc:
            log.warning("cache unavailable: %s", exc, extra={"action": "cache_error"})

    async def compute_once(
        self, key: str, compute: Callable[[], Awaitable[Answer]]
    ) -> tuple[Answer, bool]:
        """The answer for `key`, computed by the first of concurrent callers only;
        True when it was another caller's."""

        async def compute_and_store() -> Answer:
            answer = await compute()
            await self._store(key, answer)
            return answer

        return await self._inflight.run(key, compute_and_store)
