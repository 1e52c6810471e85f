"""The response cache: hits skip the database, a rollup's notification shows new numbers,
orgs never share answers, concurrent misses compute once, Redis shares it all."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from graph.cache import ttl_for
from storage import orgs
from storage.db import with_database
from storage.fills import insert_fills
from tests.cli import run_cli
from tests.factories import address, fill
from tests.integration.graph.conftest import Api, running_api, settings
from tests.integration.graph.seed import W2, W4, Seeded
from tests.waiting import eventually

SUMMARY = "{ dashboardSummary { day latest { tradeCount totalVolumeUsd } trackedWallets } }"
BUMP = """
UPDATE global_day_metrics SET trade_count = trade_count + 100, total_volume_usd = 7777.77
WHERE org_id = %s AND day = %s
"""


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@asynccontextmanager
async def database_away(url: str) -> AsyncIterator[None]:
    """The API's pool loses its connections and cannot open new ones, until the end."""
    name = database_name(url)
    admin = with_database(url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'hl-analytics-api'",
            (name,),
        )
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
            )


def notify(url: str, org_id: object) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify('hl_metrics_changed', %s)", (str(org_id),))


def test_ttls_follow_the_original_design() -> None:
    assert ttl_for(frozenset({"dashboardSummary"})) == 60
    assert ttl_for(frozenset({"globalMetrics"})) == 300
    assert ttl_for(frozenset({"topWallets"})) == 120
    assert ttl_for(frozenset({"globalMetrics", "topWallets"})) == 120
    assert ttl_for(frozenset()) == 60


async def test_hit_does_not_touch_the_database_and_503_then_recovery(
    db_url: str, seeded: Seeded
) -> None:
    async with running_api(db_url, seeded, pool_timeout=1.0) as api:
        first = await api.post(SUMMARY)
        assert first.headers["x-cache"] == "miss"
        async with database_away(db_url):
            again = await api.post(SUMMARY)
            assert again.status_code == 200
            assert again.headers["x-cache"] == "hit"
            assert again.content == first.content
            # Proof the database is away: anything not cached is a 503, not a 500.
            uncached = await api.post("{ globalMetrics(range: D7) { day } }")
            assert uncached.status_code == 503
            assert uncached.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert uncached.headers["retry-after"]
            assert (await api.client.get(api.url + "/readyz")).status_code == 503
            assert (await api.client.get(api.url + "/healthz")).status_code == 200

        async def recovered() -> bool:
            response = await api.post("{ globalMetrics(range: D7) { day } }")
            return response.status_code == 200

        await eventually(recovered)

        async def ready() -> bool:  # /readyz's answer is up to a second old
            return (await api.client.get(api.url + "/readyz")).status_code == 200

        await eventually(ready)


async def test_notification_serves_new_numbers(api: Api) -> None:
    seeded = api.seeded
    before = await api.data(SUMMARY)
    before_b = await api.post(SUMMARY, user="bob")
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        conn.execute(BUMP, (seeded.org_a, seeded.today))
    stale = await api.post(SUMMARY)
    assert stale.headers["x-cache"] == "hit"
    assert stale.json()["data"] == before  # still cached: nothing announced the change
    notify(api.db_url, seeded.org_a)

    async def fresh() -> bool:
        data = (await api.post(SUMMARY)).json()["data"]
        return bool(data["dashboardSummary"]["latest"]["tradeCount"] == 105)

    await eventually(fresh)
    data = await api.data(SUMMARY)
    assert data["dashboardSummary"]["latest"] == {
        "tradeCount": 105,
        "totalVolumeUsd": "7777.770000",
    }
    # Another org's answers are untouched by A's change.
    after_b = await api.post(SUMMARY, user="bob")
    assert after_b.headers["x-cache"] == "hit"
    assert after_b.content == before_b.content


async def test_orgs_never_share_answers(api: Api) -> None:
    query = "{ topWallets { address } dashboardSummary { latest { tradeCount } } }"
    alice = await api.post(query, user="alice")
    bob = await api.post(query, user="bob")
    assert alice.headers["x-cache"] == bob.headers["x-cache"] == "miss"
    assert alice.json()["data"]["dashboardSummary"]["latest"]["tradeCount"] == 5
    assert bob.json()["data"]["dashboardSummary"]["latest"]["tradeCount"] == 9
    andy = await api.post(query, user="andy")  # same org as alice: her answer is his
    assert andy.headers["x-cache"] == "hit"
    assert andy.content == alice.content
    variables = "query ($r: MetricsRange!) { globalMetrics(range: $r) { day } }"
    assert len((await api.data(variables, {"r": "D7"}))["globalMetrics"]) == 7
    assert len((await api.data(variables, {"r": "D30"}))["globalMetrics"]) == 30


async def test_concurrent_misses_compute_once(api: Api) -> None:
    query = "{ globalMetrics(range: D90) { day totalVolumeUsd } topWallets { address } }"
    responses = await asyncio.gather(*(api.post(query) for _ in range(30)))
    assert all(r.status_code == 200 for r in responses)
    sources = [r.headers["x-cache"] for r in responses]
    assert sources.count("miss") == 1
    assert set(sources) <= {"miss", "shared", "hit"}
    assert len({r.content for r in responses}) == 1


async def test_errors_are_not_cached(api: Api) -> None:
    query = '{ wallet(address: "nope") { address } }'
    assert (await api.post(query)).headers["x-cache"] == "miss"
    assert (await api.post(query)).headers["x-cache"] == "miss"


def redis_url() -> str | None:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return url
    except OSError:
        return None


async def test_redis_shares_answers_and_versions_between_instances(
    db_url: str, seeded: Seeded
) -> None:
    url = redis_url()
    if url is None:
        pytest.skip("no Redis on 127.0.0.1:6379 (set TEST_REDIS_URL)")
    config = settings(REDIS_URL=url)
    async with (
        running_api(db_url, seeded, config) as one,
        running_api(db_url, seeded, config) as two,
    ):
        first = await one.post(SUMMARY)
        assert first.headers["x-cache"] == "miss"
        second = await two.post(SUMMARY)
        assert second.headers["x-cache"] == "hit"
        assert second.content == first.content
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(BUMP, (seeded.org_a, seeded.today))
        notify(db_url, seeded.org_a)

        async def both_fresh() -> bool:
            a = (await one.post(SUMMARY)).json()["data"]["dashboardSummary"]["latest"]
            b = (await two.post(SUMMARY)).json()["data"]["dashboardSummary"]["latest"]
            return bool(a["tradeCount"] == b["tradeCount"] == 105)

        await eventually(both_fresh)
        data = await two.data("query ($a: String!) { wallet(address: $a) { address } }", {"a": W2})
        assert data == {"wallet": {"address": W2}}


async def test_a_real_rollup_shows_its_numbers(api: Api) -> None:
    """Fills stored and rolled up by the pipeline's statements reach a cached client."""
    from storage import rollups

    seeded = api.seeded
    before = await api.data(SUMMARY)
    assert before["dashboardSummary"]["latest"]["tradeCount"] == 5
    now_ms = int(time.time() * 1000)
    with psycopg.connect(api.db_url) as conn:
        w4 = orgs.upsert_wallets(conn, [W4])[0].id
        insert_fills(conn, w4, [fill(now_ms, tid=1, oid=1), fill(now_ms, tid=2, oid=2)])
        rollups.rebuild_wallet_days(conn, [w4], seeded.today)
        rollups.rebuild_org_day(conn, seeded.org_a, seeded.today)

    async def rolled_up() -> bool:
        latest = (await api.data(SUMMARY))["dashboardSummary"]["latest"]
        return bool(latest["tradeCount"] == 7)

    await eventually(rolled_up)
    query = "{ dashboardSummary { latest { dau totalVolumeUsd } } }"
    latest = (await api.data(query))["dashboardSummary"]["latest"]
    # W1 300.75 + W2 300.125 (seeded) + W4 2 × 100.5 × 2 (the fills).
    assert latest["dau"] == 3
    assert Decimal(latest["totalVolumeUsd"]) == Decimal("1002.875")


async def test_listener_reconnects_and_forgets_what_it_may_have_missed(api: Api) -> None:
    seeded = api.seeded
    await api.data(SUMMARY)
    assert (await api.post(SUMMARY)).headers["x-cache"] == "hit"
    listener = api.app.state.listener
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'hl-analytics-api-listen'"
        )

    async def relistening() -> bool:
        return bool(listener.listening.is_set()) and (
            (await api.post(SUMMARY)).headers["x-cache"] == "miss"
        )

    await eventually(relistening, timeout_s=10)
    # And notifications flow again on the new connection.
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        conn.execute(BUMP, (seeded.org_a, seeded.today))
    notify(api.db_url, seeded.org_a)

    async def fresh() -> bool:
        latest = (await api.data(SUMMARY))["dashboardSummary"]["latest"]
        return bool(latest["tradeCount"] == 105)

    await eventually(fresh)


async def test_cli_wallets_track_shows_in_a_running_api_at_once(api: Api) -> None:
    """`hl-analytics wallets track` notifies the API in its transaction: the org's warm
    answers are dropped at its commit, not when their TTL (60 s) runs out."""
    seeded = api.seeded
    before = await api.data(SUMMARY)
    assert before["dashboardSummary"]["trackedWallets"] == 3
    warm = await api.post(SUMMARY)
    assert warm.headers["x-cache"] == "hit"
    new_wallet = address(5)
    result = await asyncio.to_thread(
        run_cli,
        "wallets",
        "track",
        "--org",
        str(seeded.org_a),
        new_wallet,
        env={"DATABASE_URL": api.db_url},
    )
    assert result.code == 0, result.err
    assert "1 wallet(s) newly tracked" in result.out
    started = time.monotonic()

    async def tracked_four() -> bool:
        data = (await api.post(SUMMARY)).json()["data"]
        return bool(data["dashboardSummary"]["trackedWallets"] == 4)

    await eventually(tracked_four)
    assert time.monotonic() - started < ttl_for(frozenset({"dashboardSummary"}))
    # Another org's answers are untouched.
    assert (await api.post(SUMMARY, user="bob")).json()["data"]["dashboardSummary"][
        "trackedWallets"
    ] == 2
