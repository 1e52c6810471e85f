"""Invalidation that survives live ingestion: a changed day hides only the answers that read
it (not another org's, not a range that excludes it), and an org's notifications are
coalesced into at most one invalidation per window."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

import psycopg
import pytest

from graph.cache import Answer, ResponseCache
from graph.coalesce import Coalescer
from storage import changes
from storage.db import database_identity
from tests.dbs import TestDatabases
from tests.integration.graph.conftest import running_api, settings
from tests.integration.graph.seed import Seeded
from tests.integration.graph.test_cache import redis_url
from tests.waiting import eventually

TODAY = date(2026, 11, 30)
D7 = (TODAY - timedelta(days=6), TODAY)
LAST_MONTH = (date(2026, 10, 1), date(2026, 10, 31))


Ranges = tuple[tuple[date, date], ...] | None


def _answer(body: bytes, days: Ranges) -> Callable[[], Awaitable[Answer]]:
    async def compute() -> Answer:
        return Answer(200, body, 60, days)

    return compute


async def _day_scoped(one: ResponseCache, two: ResponseCache) -> None:
    """Answers stored through `one`, changes announced through `two` (the same cache
    when they are one instance, or two instances sharing Redis)."""
    org, other = uuid.uuid4(), uuid.uuid4()
    week = await one.key(org, TODAY.isoformat(), "week")
    month = await one.key(org, TODAY.isoformat(), "month")
    summary = await one.key(org, TODAY.isoformat(), "summary")
    elsewhere = await one.key(other, TODAY.isoformat(), "week")
    await one.compute_once(week, _answer(b"week", (D7,)))
    await one.compute_once(month, _answer(b"month", (LAST_MONTH,)))
    await one.compute_once(summary, _answer(b"summary", None))  # may read any day
    await one.compute_once(elsewhere, _answer(b"other", (D7,)))

    await two.invalidate_days(org, [TODAY])  # today's rollup
    assert await one.get(week) is None
    assert await one.get(month) == b"month"  # its range excludes today
    assert await one.get(summary) is None
    assert await one.get(elsewhere) == b"other"  # another org

    await one.compute_once(week, _answer(b"week 2", (D7,)))
    await two.invalidate_days(org, [date(2026, 10, 15)])  # a late fill last month
    assert await one.get(month) is None
    assert await one.get(week) == b"week 2"
    await two.invalidate(org)  # the whole org (tracking): everything of it
    assert await one.get(await one.key(org, TODAY.isoformat(), "week")) is None
    assert await one.get(elsewhere) == b"other"


async def test_a_changed_day_hides_only_answers_that_read_it() -> None:
    cache = ResponseCache()
    await _day_scoped(cache, cache)


async def test_in_redis_a_changed_day_reaches_every_instance() -> None:
    url = redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379 (set TEST_REDIS_URL)")
    one, two = ResponseCache(url), ResponseCache(url)
    try:
        await _day_scoped(one, two)
        # A lost change record is a miss, never an old answer.
        org = uuid.uuid4()
        key = await one.key(org, TODAY.isoformat(), "week")
        await one.compute_once(key, _answer(b"week", (D7,)))
        assert await two.get(key) == b"week"
        await one.backend.client.delete(one.backend.build_key(f"c:{org}"))
        assert await two.get(key) is None
    finally:
        await one.close()
        await two.close()


async def _identity(url: str) -> str:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await database_identity(conn)


async def test_in_redis_a_lost_link_drops_only_its_own_databases_answers(
    dbs: TestDatabases,
) -> None:
    """Two deployments (here: two databases) sharing one Redis: when one's change
    listener reconnects, its answers are dropped on every instance, the other's stay."""
    url = redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379 (set TEST_REDIS_URL)")
    first, second = dbs.fresh(migrated=False), dbs.fresh(migrated=False)
    try:
        # One database has one identity, whatever address reaches it.
        by_name = first.replace("127.0.0.1", "localhost", 1)
        assert await _identity(first) == await _identity(by_name)
        a, b = await _identity(first), await _identity(second)
        assert a != b
        a_one, a_two, b_one = ResponseCache(url), ResponseCache(url), ResponseCache(url)
        try:
            for cache, database in ((a_one, a), (a_two, a), (b_one, b)):
                await cache.invalidate_all(database)  # each listener's first LISTEN
            org_a, org_b = uuid.uuid4(), uuid.uuid4()
            day = TODAY.isoformat()

            async def stored(cache: ResponseCache, org: uuid.UUID) -> bytes | None:
                return await cache.get(await cache.key(org, day, "week"))

            await a_one.compute_once(await a_one.key(org_a, day, "week"), _answer(b"a", (D7,)))
            await b_one.compute_once(await b_one.key(org_b, day, "week"), _answer(b"b", (D7,)))
            assert await stored(a_two, org_a) == b"a"
            await a_two.invalidate_all(a)  # a's second instance lost its link
            assert await stored(a_one, org_a) is None
            assert await stored(b_one, org_b) == b"b"
        finally:
            for cache in (a_one, a_two, b_one):
                await cache.close()
    finally:
        dbs.drop(first)
        dbs.drop(second)


async def test_notifications_are_coalesced_per_org_and_window() -> None:
    applied: list[tuple[uuid.UUID, frozenset[date] | None, float]] = []

    async def apply(org: uuid.UUID, days: frozenset[date] | None) -> None:
        applied.append((org, days, time.monotonic()))

    window = 0.5
    coalescer = Coalescer(window, apply)
    a, b = uuid.uuid4(), uuid.uuid4()
    await coalescer.changed(a, [TODAY])  # after a quiet spell: at once
    assert [(org, days) for org, days, _ in applied] == [(a, frozenset({TODAY}))]
    for n in range(20):  # a burst: gathered
        await coalescer.changed(a, [TODAY - timedelta(days=n % 3)])
    await coalescer.changed(b, [TODAY])  # another org has its own window
    assert [org for org, _, _ in applied] == [a, b]

    def count(n: int) -> Callable[[], Awaitable[bool]]:
        async def reached() -> bool:
            return len(applied) == n

        return reached

    await eventually(count(3))
    org, days, at = applied[2]
    assert (org, days) == (a, frozenset(TODAY - timedelta(days=n) for n in range(3)))
    assert at - applied[0][2] >= window  # not before the window ended
    await coalescer.changed(a, [TODAY])
    await coalescer.changed(a, None)  # one org-wide change in the burst: the whole org
    await eventually(count(4))
    assert applied[3][:2] == (a, None)
    await coalescer.stop()


async def test_the_api_keeps_answers_whose_days_did_not_change(db_url: str, seeded: Seeded) -> None:
    config = settings(HL_ANALYTICS_CACHE_COALESCE_S="0.2")
    today = seeded.today
    week = "{ topWallets(range: D7) { address totalVolumeUsd } }"
    old = (today - timedelta(days=100)).isoformat(), (today - timedelta(days=60)).isoformat()
    long_ago = (
        "query ($f: Date!, $t: Date!) { topWallets(between: {from: $f, to: $t}) { address } }"
    )
    variables = {"f": old[0], "t": old[1]}
    async with running_api(db_url, seeded, config) as api:
        assert api.app.state.listener.coalescer.window_s == 0.2
        assert (await api.post(week)).headers["x-cache"] == "miss"
        assert (await api.post(long_ago, variables)).headers["x-cache"] == "miss"
        with psycopg.connect(db_url, autocommit=True) as conn:  # today's rollup
            conn.execute(
                "SELECT pg_notify(%s, %s)", (changes.CHANNEL, changes.payload(seeded.org_a, today))
            )

        async def week_recomputed() -> bool:
            return (await api.post(week)).headers["x-cache"] == "miss"

        await eventually(week_recomputed)
        assert (await api.post(long_ago, variables)).headers["x-cache"] == "hit"
