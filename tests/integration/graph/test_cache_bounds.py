"""The in-memory cache is bounded by bytes; in Redis, a lost version key is a miss."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from graph.cache import Answer, ResponseCache
from tests.integration.graph.conftest import running_api, settings
from tests.integration.graph.seed import Seeded
from tests.integration.graph.test_cache import BUMP, SUMMARY, eventually, notify, redis_url


async def test_the_memory_cache_is_bounded_by_bytes() -> None:
    bound = 2_000_000
    cache = ResponseCache(max_bytes=bound)
    body = b"x" * 465_000  # the size of the answers that grew the process by 100 MB
    # Keys as `ResponseCache.key` makes them: the org comes second.
    org = uuid.uuid4()
    keys = [f"r:{org}:key-{n}" for n in range(300)]
    for key in keys:
        _, shared = await cache.compute_once(key, _answer(body))
        assert not shared
        assert cache.backend.bytes <= bound
        assert await cache.get(key) == body  # the newest is always there
    assert len(cache.backend) == 4  # 2 MB hold four answers of 465 KB
    assert await cache.get(keys[0]) is None  # the oldest went first
    # A hit makes an entry recent: it outlives older ones.
    await cache.get(keys[-4])
    await cache.compute_once(f"r:{org}:one-more", _answer(body))
    assert await cache.get(keys[-4]) == body
    assert await cache.get(keys[-3]) is None
    # An answer larger than the whole bound is served, not stored.
    huge, _ = await cache.compute_once(f"r:{org}:huge", _answer(b"y" * (bound + 1)))
    assert huge.body == b"y" * (bound + 1) and await cache.get(f"r:{org}:huge") is None
    assert cache.backend.bytes <= bound


def _answer(body: bytes) -> Callable[[], Awaitable[Answer]]:
    async def compute() -> Answer:
        return Answer(200, body, 60)

    return compute


async def test_the_setting_bounds_the_api_cache(db_url: str, seeded: Seeded) -> None:
    config = settings(HL_ANALYTICS_CACHE_MAX_BYTES="123456")
    async with running_api(db_url, seeded, config) as api:
        assert api.app.state.services.cache.backend.max_bytes == 123456
        assert (await api.post(SUMMARY)).headers["x-cache"] == "miss"
        assert (await api.post(SUMMARY)).headers["x-cache"] == "hit"


async def test_a_lost_redis_version_key_is_a_miss_not_a_stale_answer(
    db_url: str, seeded: Seeded
) -> None:
    url = redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379 (set TEST_REDIS_URL)")
    async with running_api(db_url, seeded, settings(REDIS_URL=url)) as api:
        cache = api.app.state.services.cache
        first = await api.post(SUMMARY)
        assert first.json()["data"]["dashboardSummary"]["latest"]["tradeCount"] == 5
        assert (await api.post(SUMMARY)).headers["x-cache"] == "hit"
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(BUMP, (seeded.org_a, seeded.today))
        notify(db_url, seeded.org_a)

        async def fresh() -> bool:
            latest = (await api.post(SUMMARY)).json()["data"]["dashboardSummary"]["latest"]
            return bool(latest["tradeCount"] == 105)

        await eventually(fresh, timeout_s=10)
        # The org's version key is lost (evicted, flushed, deleted by hand).
        await cache.backend.delete(f"v:{seeded.org_a}")
        again = await api.post(SUMMARY)
        assert again.headers["x-cache"] == "miss"
        assert again.json()["data"]["dashboardSummary"]["latest"]["tradeCount"] == 105
        assert (await api.post(SUMMARY)).headers["x-cache"] == "hit"
