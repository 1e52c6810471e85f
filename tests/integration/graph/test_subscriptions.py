"""`metricsChanged` over graphql-transport-ws: scoping, coalescing, expiry, revocation,
limits and slow clients, against the real API (uvicorn) and the rollups' own
notifications (`rollups.rebuild_org_day`, committed)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import graph.subscriptions
from graph.fanout import Event
from storage import rollups
from tests.integration.graph.conftest import Api, make_token, running_api, settings
from tests.integration.graph.seed import Seeded

SUBSCRIBE = "subscription { metricsChanged { days changedAt } }"
WAIT_S = 30.0  # a guard against hanging, not a measure: events come within a second or two


class Socket:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def message(self) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), WAIT_S)))

    async def init(self, payload: object) -> None:
        await self.ws.send(json.dumps({"type": "connection_init", "payload": payload}))

    async def subscribe(self, op_id: str = "1", query: str = SUBSCRIBE) -> None:
        await self.ws.send(
            json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query}})
        )

    async def event(self) -> list[str]:
        message = await self.message()
        assert message["type"] == "next", message
        change = message["payload"]["data"]["metricsChanged"]
        datetime.fromisoformat(change["changedAt"])
        return list(change["days"])

    async def close_code(self) -> int | None:
        """The code the server closed with (messages still in flight are skipped)."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), WAIT_S)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@asynccontextmanager
async def socket(api: Api) -> AsyncIterator[Socket]:
    url = api.url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        yield Socket(ws)


@asynccontextmanager
async def subscribed(api: Api, token: str) -> AsyncIterator[Socket]:
    async with socket(api) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        assert (await ws.message())["type"] == "connection_ack"
        await ws.subscribe()
        await wait_for_feeds(api)
        yield ws


async def wait_for_feeds(api: Api) -> None:
    """Until every socket opened has its feed (the subscription runs on its own task)."""
    hub, sockets = api.app.state.hub, api.app.state.sockets
    for _ in range(int(WAIT_S / 0.02)):
        if sum(hub.feeds(o) for o in hub_orgs(api)) >= len(sockets):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the subscriptions did not start")


def hub_orgs(api: Api) -> list[uuid.UUID]:
    return [api.seeded.org_a, api.seeded.org_b, api.seeded.org_empty]


def rolled_up(db_url: str, changes: Sequence[tuple[uuid.UUID, date]]) -> None:
    """The rollups recompute these org-days, in one transaction (one burst of notifications)."""
    with psycopg.connect(db_url) as conn:
        for org, day in changes:
            rollups.rebuild_org_day(conn, org, day)


def days(seeded: Seeded, *ago: int) -> list[date]:
    return [seeded.today - timedelta(days=n) for n in ago]


async def test_each_socket_gets_only_its_orgs_events(api: Api) -> None:
    s = api.seeded
    a1, a2, b1, b2 = days(s, 0, 1, 2, 3)
    async with (
        subscribed(api, api.token("alice")) as alice,
        subscribed(api, api.token("bob")) as bob,
    ):
        rolled_up(api.db_url, [(s.org_b, b1)])
        rolled_up(api.db_url, [(s.org_a, a1)])
        assert await alice.event() == [a1.isoformat()]
        assert await bob.event() == [b1.isoformat()]
        rolled_up(api.db_url, [(s.org_a, a2)])
        rolled_up(api.db_url, [(s.org_b, b2)])
        # Had another org's event reached a socket, it would be the next one read here.
        assert await alice.event() == [a2.isoformat()]
        assert await bob.event() == [b2.isoformat()]


async def test_a_burst_of_rollups_is_merged(api: Api) -> None:
    s = api.seeded
    burst = days(s, 0, 1, 2, 3, 4, 5)
    async with subscribed(api, api.token("andy")) as andy:
        rolled_up(api.db_url, [(s.org_a, day) for day in burst])
        seen: list[str] = []
        events = 0
        while len(seen) < len(burst):
            seen += await andy.event()
            events += 1
        # The first notification goes out at once, the others within the next second
        # merged into one event.
        assert sorted(seen) == sorted(d.isoformat() for d in burst)
        assert events <= 2
        rolled_up(api.db_url, [(s.org_a, burst[0])])
        assert await andy.event() == [burst[0].isoformat()]


async def test_refused_tokens_close_with_4403(api: Api) -> None:
    refused: list[object] = [
        None,
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {make_token('alice', secret='another-secret-' * 3)}"},
        {"Authorization": f"Bearer {make_token('alice', expires_in=-60)}"},
        {"Authorization": f"Bearer {make_token('nobody-has-this-profile')}"},
        {"Authorization": f"Bearer {make_token('alice', role='anon')}"},
    ]
    for payload in refused:
        async with socket(api) as ws:
            await ws.init(payload)
            assert await ws.close_code() == 4403, payload
    async with socket(api) as ws:
        await ws.subscribe()  # before connection_init
        assert await ws.close_code() == 4401


async def test_the_socket_closes_when_the_token_expires(api: Api) -> None:
    async with subscribed(api, make_token("alice", expires_in=2)) as alice:
        assert await alice.close_code() == 4403
    await wait_for_sockets(api, 0)


async def test_the_socket_closes_when_the_profile_is_removed_or_moved(api: Api) -> None:
    async with (
        subscribed(api, api.token("alice")) as alice,
        subscribed(api, api.token("andy")) as andy,
        subscribed(api, api.token("bob")) as bob,
    ):
        with psycopg.connect(api.db_url) as conn:
            conn.execute("DELETE FROM user_profiles WHERE user_id = 'alice'")
            conn.execute(
                "UPDATE user_profiles SET org_id = %s WHERE user_id = 'andy'",
                (api.seeded.org_b,),
            )
        assert await alice.close_code() == 4403
        assert await andy.close_code() == 4403
        # Bob's access did not change: his socket still gets his org's events.
        day = api.seeded.today
        rolled_up(api.db_url, [(api.seeded.org_b, day)])
        assert await bob.event() == [day.isoformat()]


async def wait_for_sockets(api: Api, count: int) -> None:
    for _ in range(int(WAIT_S / 0.02)):
        if len(api.app.state.sockets) == count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the instance did not come to {count} sockets")


async def test_sockets_are_capped_per_user_and_per_instance(db_url: str, seeded: Seeded) -> None:
    config = settings(HL_ANALYTICS_WS_MAX_PER_USER="2", HL_ANALYTICS_WS_MAX_CONNECTIONS="3")
    async with running_api(db_url, seeded, config) as api:
        async with subscribed(api, api.token("alice")), subscribed(api, api.token("alice")):
            async with socket(api) as third:
                await third.init({"Authorization": f"Bearer {api.token('alice')}"})
                assert await third.close_code() == 4429
            async with subscribed(api, api.token("bob")), socket(api) as fourth:
                await fourth.init({"Authorization": f"Bearer {api.token('andy')}"})
                assert await fourth.close_code() == 4429
        await wait_for_sockets(api, 0)
        async with subscribed(api, api.token("alice")) as again:
            rolled_up(api.db_url, [(seeded.org_a, seeded.today)])
            assert await again.event() == [seeded.today.isoformat()]


async def test_a_client_that_stops_reading_is_disconnected(db_url: str, seeded: Seeded) -> None:
    """Events arriving faster than the socket sends them fill its bounded feed: past
    HL_ANALYTICS_WS_QUEUE it is closed with 4008, and nothing more is kept for it."""
    config = settings(HL_ANALYTICS_WS_QUEUE="3")
    async with running_api(db_url, seeded, config) as api:
        hub = api.app.state.hub
        async with (
            subscribed(api, api.token("alice")) as alice,
            subscribed(api, api.token("bob")) as bob,
        ):
            event = Event(seeded.org_a, (seeded.today,), datetime.now(UTC))
            # Offered back to back, with no chance for the socket to send one.
            for _ in range(4):
                hub.publish(event)
            assert await alice.close_code() == 4008
            assert hub.feeds(seeded.org_a) == 0
            rolled_up(api.db_url, [(seeded.org_b, seeded.today)])
            assert await bob.event() == [seeded.today.isoformat()]


async def test_queries_are_refused_over_the_socket(api: Api) -> None:
    async with socket(api) as ws:
        await ws.init({"Authorization": f"Bearer {api.token('alice')}"})
        assert (await ws.message())["type"] == "connection_ack"
        await ws.subscribe("q", "{ dashboardSummary { trackedWallets } }")
        message = await ws.message()
        assert (message["type"], message["id"]) == ("error", "q")
        await ws.ws.send(json.dumps({"type": "ping"}))
        assert (await ws.message())["type"] == "pong"


async def test_a_subscription_over_http_is_refused(api: Api) -> None:
    response = await api.post(SUBSCRIBE)
    assert response.status_code == 405, response.text
    assert "websocket" in response.json()["errors"][0]["message"]
    response = await api.client.get(
        api.url + "/graphql",
        params={"query": SUBSCRIBE},
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    assert response.status_code == 405, response.text
    assert "websocket" in response.json()["errors"][0]["message"]


async def test_a_lost_listener_link_sends_an_event_without_days(api: Api) -> None:
    async with subscribed(api, api.token("bob")) as bob:
        with psycopg.connect(api.db_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "datname = current_database() AND application_name = 'hl-analytics-api-listen'"
            )
        assert await bob.event() == []


async def test_protocol_errors_close_with_the_protocols_codes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph.subscriptions, "INIT_TIMEOUT_S", 0.5)
    async with socket(api) as silent:
        assert await silent.close_code() == 4408
    async with socket(api) as garbage:
        await garbage.ws.send("not json")
        assert await garbage.close_code() == 4400
    async with socket(api) as big:
        await big.ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        assert await big.close_code() == 4400
    async with subscribed(api, api.token("alice")) as twice:
        await twice.subscribe("1")
        assert await twice.close_code() == 4409
    async with subscribed(api, api.token("alice")) as again:
        await again.init({"Authorization": f"Bearer {api.token('alice')}"})
        assert await again.close_code() == 4429
