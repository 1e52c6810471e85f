"""One caller cannot take an instance down: bursts of wide requests that time out on
the pool leave every connection returned, a request holds at most one connection,
and /healthz fails only when the pool stays unable to hand out connections."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import httpx

from graph.health import READY_CACHE_S
from tests.integration.graph.conftest import Api, running_api, settings
from tests.integration.graph.seed import W1, Seeded
from tests.integration.graph.test_cache import eventually
from tests.shared_services import UNTHROTTLED

SUMMARY = "{ dashboardSummary { trackedWallets } }"
WIDE = "{ " + " ".join(f"a{i}: globalMetrics(range: D90) {{ day dau }}" for i in range(30)) + " }"
# 30 fields within the cost budget (30 × 30 days), for the default configuration.
WIDE_D30 = WIDE.replace("D90", "D30")
BURSTS, CONCURRENT = 3, 80


def idle(stats: dict[str, int]) -> bool:
    """Every connection the pool opened is back in it."""
    return stats["pool_size"] > 0 and stats["pool_available"] == stats["pool_size"]


async def burst(api: Api, tag: str) -> list[int]:
    """CONCURRENT wide requests at once, each a different operation (its name), so none
    is answered from the cache or shared with another. Each burst has its own connections:
    one left idle by an earlier burst may be closed by the server's keep-alive timeout
    just as it is reused, which is the client's race, not the API's."""
    headers = {"Authorization": f"Bearer {api.token('alice')}"}
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> int:
            body: dict[str, Any] = {"query": f"query {tag}_{i} {WIDE}"}
            response = await client.post(api.url + "/graphql", json=body, headers=headers)
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(CONCURRENT))))


async def test_bursts_of_wide_requests_leave_the_pool_whole(db_url: str, seeded: Seeded) -> None:
    # The flood this test is about is what fair share refuses (429, and 400 for the
    # cost): without those limits it must still leave the pool whole.
    config = settings(**UNTHROTTLED, HL_ANALYTICS_COST_BUDGET="100000")
    async with running_api(db_url, seeded, config, pool_timeout=0.05, pool_size=4) as api:
        pool = api.app.state.services.pool
        statuses: list[int] = []
        for n in range(BURSTS):
            statuses += await burst(api, f"burst{n}")
        assert set(statuses) <= {200, 503}, statuses
        assert 503 in statuses, "the attack did not reach the pool's timeout"

        after = pool.get_stats()
        print(
            f"reliability: {len(statuses)} wide requests in {BURSTS} bursts: "
            f"{statuses.count(200)} × 200, {statuses.count(503)} × 503; pool right after: "
            f"{after.get('pool_available', 0)} of {after.get('pool_size', 0)} available"
        )

        async def recovered() -> bool:
            return idle(pool.get_stats())

        await eventually(recovered)
        assert (await api.data(SUMMARY)) == {"dashboardSummary": {"trackedWallets": 3}}
        assert (await api.client.get(api.url + "/healthz")).status_code == 200


async def test_a_request_borrows_one_connection_however_many_fields(api: Api) -> None:
    pool = api.app.state.services.pool
    await api.data(SUMMARY)  # the profile is cached from here on
    before = pool.get_stats().get("requests_num", 0)
    response = await api.client.post(
        api.url + "/graphql",
        json={"query": WIDE_D30, "extra": "one-connection"},
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 30
    assert pool.get_stats().get("requests_num", 0) - before == 1


async def test_healthz_fails_while_the_pool_is_stuck_and_recovers(
    db_url: str, seeded: Seeded
) -> None:
    config = settings(HL_ANALYTICS_HEALTH_STALL_S="0.5")
    async with running_api(db_url, seeded, config, pool_timeout=0.2, pool_size=1) as api:
        pool = api.app.state.services.pool
        await api.data(SUMMARY)
        held = await pool.getconn()  # the pool's only connection, as if lost
        try:
            response = await api.post("{ globalMetrics(range: D7) { day } }")
            assert response.status_code == 503

            async def unhealthy() -> bool:
                # Requests keep failing meanwhile, as they would on a stuck instance.
                await api.post("{ topWallets { address } }")
                health = await api.client.get(api.url + "/healthz")
                return health.status_code == 503 and health.json()["status"] == "stalled"

            await eventually(unhealthy)
        finally:
            await pool.putconn(held)

        async def healthy() -> bool:
            return (await api.client.get(api.url + "/healthz")).status_code == 200

        await eventually(healthy)
        assert (await api.data(SUMMARY)) == {"dashboardSummary": {"trackedWallets": 3}}


async def test_healthz_does_not_fail_for_a_burst_long_past(db_url: str, seeded: Seeded) -> None:
    config = settings(HL_ANALYTICS_HEALTH_STALL_S="0.2")
    async with running_api(db_url, seeded, config, pool_timeout=0.1, pool_size=1) as api:
        pool = api.app.state.services.pool
        await api.data(SUMMARY)
        held = await pool.getconn()
        assert (await api.post("{ globalMetrics(range: D7) { day } }")).status_code == 503
        await pool.putconn(held)

        async def stalled_long_enough() -> bool:
            return bool(pool.stalled_for() >= 0.2)

        await eventually(stalled_long_enough)
        # Nobody asked since the timeout, but the pool can lend again: healthy.
        assert (await api.client.get(api.url + "/healthz")).status_code == 200


async def test_readyz_is_cached_and_never_borrows_from_the_request_pool(api: Api) -> None:
    pool = api.app.state.services.pool
    before = pool.get_stats().get("requests_num", 0)
    started = time.monotonic()
    answers = await asyncio.gather(*(api.client.get(api.url + "/readyz") for _ in range(200)))
    elapsed = time.monotonic() - started
    assert {a.status_code for a in answers} == {200}
    assert pool.get_stats().get("requests_num", 0) == before
    # At most one probe per READY_CACHE_S however many checks (one more for the start).
    assert api.app.state.health.probes <= 1 + math.ceil(elapsed / READY_CACHE_S)


async def test_fields_of_a_request_that_could_not_borrow_fail_at_once(
    db_url: str, seeded: Seeded
) -> None:
    """Nullable fields are not cancelled when one fails: they must not each wait out
    the pool's timeout in turn (30 fields × the timeout)."""
    async with running_api(db_url, seeded, pool_timeout=0.2, pool_size=1) as api:
        pool = api.app.state.services.pool
        await api.data(SUMMARY)
        held = await pool.getconn()
        try:
            before = pool.get_stats().get("requests_num", 0)
            wide = "{ " + " ".join(
                f'a{i}: wallet(address: "{W1}") {{ address }}' for i in range(30)
            )
            response = await api.post(wide + " }")
            assert response.status_code == 503
            assert pool.get_stats().get("requests_num", 0) - before == 1
        finally:
            await pool.putconn(held)
