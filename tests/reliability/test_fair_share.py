"""Fair share in the API, proven on real API processes: one with its memory, and two
sharing Redis (where each limit must hold across instances, so the requests of one
caller alternate between them).

Each limit is proven with settings small enough that the exact count shows: the
buckets refill at 0.01 request a second, so during a test only their burst counts.
The database slots are held by requests blocked on a table lock the test holds,
seen waiting in `pg_stat_activity`, never guessed from timing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from storage import orgs
from storage.db import connection
from tests.integration.graph.seed import seed
from tests.reliability.api_support import ApiProcess, api_process, make_token
from tests.shared_services import REDIS_URL, redis_available
from tests.unit.test_cost import PAGE, WIDE_D90
from tests.waiting import wait_until

LIMITS = {
    "HL_ANALYTICS_CALLER_RPS": "0.01",
    "HL_ANALYTICS_CALLER_BURST": "4",
    "HL_ANALYTICS_ORG_RPS": "0.01",
    "HL_ANALYTICS_ORG_BURST": "8",
    "HL_ANALYTICS_CALLER_CONCURRENCY": "1",
    "HL_ANALYTICS_ORG_CONCURRENCY": "2",
    "HL_ANALYTICS_CALLER_COST_PER_S": "0.01",
    "HL_ANALYTICS_CALLER_COST_BURST": "2400",
}
# Costs 60: with PAGE (2,332) it stays under a burst of 2,400, one more D90 does not.
D30_FIELDS = "{ a: globalMetrics(range: D30) { day } b: coinBreakdown(range: D30) { coin } }"
SUMMARY = "{ dashboardSummary { trackedWallets } }"
TRACKED = "{ trackedWallets { totalCount } }"
SERIES = "query ($r: MetricsRange) { globalMetrics(range: $r) { day dau } }"
WAITING_ON_LOCK = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND query LIKE '%global_day_metrics%'
"""


@dataclass
class World:
    url: str
    users: dict[str, str]  # short name → user id, unique per run (Redis outlives a test)


@pytest.fixture
def world(db_url: str) -> World:
    seeded = seed(db_url)
    run = uuid.uuid4().hex[:8]
    members = {"a1": seeded.org_a, "a2": seeded.org_a, "a3": seeded.org_a}
    members |= {"b1": seeded.org_b, "b2": seeded.org_b, "b3": seeded.org_b}
    members |= {"e1": seeded.org_empty, "e2": seeded.org_empty}
    users = {name: f"{name}-{run}" for name in [*members, "c1"]}
    with connection(db_url) as conn:
        members["c1"] = orgs.create_org(conn, "Costly").id
        for name, org in members.items():
            orgs.add_user(conn, users[name], org, "viewer")
    return World(db_url, users)


@pytest.fixture(params=["memory", "redis"])
def apis(request: pytest.FixtureRequest, world: World) -> Iterator[list[ApiProcess]]:
    shared = request.param == "redis"
    if shared and not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL} (set TEST_REDIS_URL)")
    settings = {**LIMITS, **({"REDIS_URL": REDIS_URL} if shared else {})}
    with ExitStack() as stack:
        yield [
            stack.enter_context(api_process(world.url, **settings))
            for _ in range(2 if shared else 1)
        ]


class Client:
    """Requests of the world's users, alternating between the API processes."""

    def __init__(self, world: World, apis: list[ApiProcess], http: httpx.AsyncClient) -> None:
        self.world, self.apis, self.http = world, apis, http
        self.sent = 0

    async def post(
        self, user: str, query: str, variables: dict[str, Any] | None = None, **extra: Any
    ) -> httpx.Response:
        api = self.apis[self.sent % len(self.apis)]
        self.sent += 1
        body = {"query": query, "variables": variables, **extra}
        token = make_token(self.world.users[user])
        return await self.http.post(
            api.graphql, json=body, headers={"Authorization": f"Bearer {token}"}
        )


def limited(response: httpx.Response, setting: str) -> bool:
    """A 429 of the limit `setting`, with its Retry-After and GraphQL error."""
    if response.status_code != 429:
        return False
    assert int(response.headers["retry-after"]) >= 1
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    return setting in error["message"]


def waiting_on_lock(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(WAITING_ON_LOCK).fetchone()
    return int(row[0]) if row else 0


async def test_each_limit_holds_for_every_instance(world: World, apis: list[ApiProcess]) -> None:
    """Guarantee: per caller and per org, requests over the rate and database-backed
    requests over the concurrency get 429 (Retry-After, RATE_LIMITED) while other
    callers and orgs are still answered; a document over the cost budget gets 400
    naming its cost and the budget; the cache answers a request however it is spelt.
    With Redis, the limits count the requests of both instances together."""
    async with httpx.AsyncClient(timeout=60) as http:
        client = Client(world, apis, http)

        # The caller's rate: its burst of 4, then 429s; another caller is still answered.
        first = [await client.post("a1", SUMMARY) for _ in range(6)]
        assert [r.status_code for r in first[:4]] == [200] * 4
        assert all(limited(r, "HL_ANALYTICS_CALLER_RPS") for r in first[4:])
        # A CSV download is a request too.
        token = make_token(world.users["a1"])
        download = await http.get(
            apis[0].url + "/export/daily.csv", headers={"Authorization": f"Bearer {token}"}
        )
        assert download.status_code == 429 and int(download.headers["retry-after"]) >= 1
        assert "HL_ANALYTICS_CALLER_RPS" in download.text

        # The org's rate: its burst of 8 (4 taken above) shared by its callers.
        assert [(await client.post("a2", SUMMARY)).status_code for _ in range(3)] == [200] * 3
        assert (await client.post("a3", SUMMARY)).status_code == 200
        assert limited(await client.post("a3", SUMMARY), "HL_ANALYTICS_ORG_RPS")
        assert (await client.post("b1", SUMMARY)).status_code == 200  # another org

        # Database slots: requests blocked on a table lock hold them.
        with psycopg.connect(world.url) as locker:
            locker.execute("LOCK TABLE global_day_metrics IN ACCESS EXCLUSIVE MODE")
            held_b1 = asyncio.create_task(client.post("b1", SERIES, {"r": "D7"}))
            await asyncio.to_thread(wait_until, lambda: waiting_on_lock(world.url) == 1)
            refused = await client.post("b1", TRACKED)
            assert limited(refused, "HL_ANALYTICS_CALLER_CONCURRENCY"), refused.text
            held_b2 = asyncio.create_task(client.post("b2", SERIES, {"r": "D30"}))
            await asyncio.to_thread(wait_until, lambda: waiting_on_lock(world.url) == 2)
            refused = await client.post("b3", TRACKED)
            assert limited(refused, "HL_ANALYTICS_ORG_CONCURRENCY"), refused.text
            other_org = await client.post("e1", TRACKED)
            assert other_org.status_code == 200, other_org.text
            locker.rollback()
        assert (await held_b1).status_code == 200
        assert (await held_b2).status_code == 200
        assert (await client.post("b3", TRACKED)).status_code == 200  # the slots are free

        # The cost budget.
        wide = await client.post("e1", WIDE_D90)
        assert wide.status_code == 400
        [error] = wide.json()["errors"]
        assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
        assert "costs 2700" in error["message"] and "budget of 2400" in error["message"]
        page = await client.post("e2", PAGE)
        assert page.status_code == 200, page.text

        # The caller's cost per second: 2,400 at once, cache hits free.
        assert (await client.post("c1", PAGE)).status_code == 200  # costs 2,332
        assert (await client.post("c1", D30_FIELDS)).status_code == 200  # 60 more
        costly = await client.post("c1", "{ globalMetrics(range: D90) { dau } }")
        assert limited(costly, "HL_ANALYTICS_CALLER_COST_PER_S"), costly.text
        assert (await client.post("c1", PAGE)).headers["x-cache"] == "hit"

        # The cache by meaning: another spelling, on another instance with Redis.
        # (e1: e2's cost burst went on the page above.)
        asked = await client.post("e1", SERIES, {"r": "D90"})
        assert (asked.status_code, asked.headers["x-cache"]) == (200, "miss"), asked.text
        respelt = "# the same\nquery($r:MetricsRange){globalMetrics(range:$r){day,dau}}"
        again = await client.post("e1", respelt, {"r": "D90"}, extra=str(uuid.uuid4()))
        assert (again.status_code, again.headers["x-cache"]) == (200, "hit"), again.text
        assert json.loads(again.content) == json.loads(asked.content)
    for api in apis:
        assert api.unexpected_errors() == []
