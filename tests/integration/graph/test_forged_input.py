"""What a client can forge but the server never issued: cursors of its own org with
positions no statement can bind, lone surrogates (JSON carries them, UTF-8 cannot),
tokens with absurd times or non-ASCII text, and websocket documents that fail before
execution. Each is refused as the client's mistake, never an internal error."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from graph import cursors
from tests.integration.graph.conftest import Api, make_token, running_api, settings
from tests.integration.graph.seed import W1, Seeded
from tests.integration.graph.test_subscriptions import Socket

FILLS = """query ($a: String!, $after: String, $coin: String) {
  wallet(address: $a) { fills(after: $after, coin: $coin) { edges { cursor } } }
}"""
WALLETS = """query ($after: String, $search: String) {
  trackedWallets(after: $after, search: $search) { totalCount }
}"""
HEALTHY = "{ dashboardSummary { trackedWallets } }"


@pytest.fixture
def api(shared_api: Api) -> Api:
    return shared_api


async def post_raw(api: Api, query: str, variables: dict[str, Any], token: str) -> httpx.Response:
    """The body as JSON with escapes: httpx's own encoder refuses lone surrogates."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return await api.client.post(api.url + "/graphql", content=body, headers=headers)


async def bad_input(api: Api, query: str, variables: dict[str, Any]) -> str:
    response = await post_raw(api, query, variables, api.token("alice"))
    payload = response.json()
    assert payload.get("errors"), payload
    error = payload["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", payload
    return str(error["message"])


async def test_forged_cursors_and_lone_surrogates_are_bad_input(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    org = api.seeded.org_a
    with caplog.at_level(logging.ERROR, logger="graph"):
        for position in (
            [2**63, 1, 1, "BTC"],  # past bigint
            [1, -(2**63) - 1, 1, "BTC"],
            [1, 1, 1, "BT\x00C"],  # text cannot hold NUL
            [1, 1, 1, "\ud800"],  # nor UTF-8 a lone surrogate
            [1.5, 1, 1, "BTC"],
        ):
            forged = cursors.encode("fills", org, position, W1)
            message = await bad_input(api, FILLS, {"a": W1, "after": forged})
            assert "not a cursor of this list" in message, position
        for position in (["\x00" * 42], ["\ud800" * 42]):
            forged = cursors.encode("wallets", org, position)
            message = await bad_input(api, WALLETS, {"after": forged})
            assert "not a cursor of this list" in message, position
        assert "lone surrogate" in await bad_input(api, WALLETS, {"search": "ab\ud800"})
        assert "lone surrogate" in await bad_input(api, FILLS, {"a": W1, "coin": "\udfff"})
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # A cursor the server issued still pages.
    issued = cursors.encode("fills", org, [2**62, 2**62, 1, "BTC"], W1)
    response = await post_raw(api, FILLS, {"a": W1, "after": issued}, api.token("alice"))
    assert response.json() == {"data": {"wallet": {"fills": {"edges": []}}}}


async def test_times_past_64_bits_and_non_ascii_tokens_are_refused(api: Api) -> None:
    now = int(time.time())
    for claims in ({"exp": 10**30}, {"exp": now + 60, "iat": -(10**30)}):
        token = make_token("alice", **claims)
        response = await post_raw(api, HEALTHY, {}, token)
        assert response.status_code == 401, response.text
        assert "must be an integer (seconds)" in response.json()["errors"][0]["message"]
    url = api.url.replace("http://", "ws://") + "/graphql"
    for header in (f"Bearer {make_token('alice', exp=10**400)}", "Bearer \ud800", "Bearer é"):
        async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            socket = Socket(ws)
            await socket.init({"Authorization": header})
            assert await socket.close_code() == 4403, header


async def test_documents_failing_before_execution_get_an_error_message(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    url = api.url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        socket = Socket(ws)
        await socket.init({"Authorization": f"Bearer {api.token('alice')}"})
        assert (await socket.message())["type"] == "connection_ack"
        with caplog.at_level(logging.ERROR, logger="graph"):
            for op_id, query, name, words in (
                ("1", "subscription {", None, "Syntax Error"),
                ("2", HEALTHY, None, "not allowed"),
                ("3", "subscription A { metricsChanged { days } }", "B", "Unknown operation"),
                (
                    "4",
                    "subscription A { metricsChanged { days } } query B { __typename }",
                    None,
                    "Must provide operation name",
                ),
            ):
                payload = {"query": query, "operationName": name}
                await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
                message = await socket.message()
                assert message["id"] == op_id and message["type"] == "error", message
                assert words in message["payload"][0]["message"], message
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        await socket.subscribe("5")  # the socket still serves
        await ws.send(json.dumps({"type": "ping"}))
        assert (await socket.message())["type"] == "pong"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send('{"type": "connection_init", "payload": ' + "[" * 20000 + "]" * 20000 + "}")
        assert await Socket(ws).close_code() == 4400


async def test_several_operations_need_an_operation_name(api: Api) -> None:
    """GraphQL requires `operationName` when a document holds several operations;
    Strawberry ran the first one instead (a client believing it ran another)."""
    two = "query A { dashboardSummary { day } } query B { dashboardSummary { trackedWallets } }"
    response = await api.post(two)
    assert response.status_code == 400, response.text
    assert "Must provide operation name" in response.json()["errors"][0]["message"]
    chosen = await api.client.post(
        api.url + "/graphql",
        json={"query": two, "operationName": "B"},
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    assert chosen.json() == {"data": {"dashboardSummary": {"trackedWallets": 3}}}


async def test_sockets_waiting_for_their_init_are_capped(db_url: str, seeded: Seeded) -> None:
    """Sockets that never send `connection_init` are held 10 s each and belong to no
    user: past HL_ANALYTICS_WS_MAX_CONNECTIONS of them, one more is closed with 4429
    (they were unbounded), and an authenticated socket still gets in."""
    config = settings(HL_ANALYTICS_WS_MAX_CONNECTIONS="2")
    async with running_api(db_url, seeded, config) as api:
        url = api.url.replace("http://", "ws://") + "/graphql"
        async with (
            connect(url, subprotocols=["graphql-transport-ws"]) as first,  # type: ignore[list-item]
            connect(url, subprotocols=["graphql-transport-ws"]) as second,  # type: ignore[list-item]
        ):
            async with connect(url, subprotocols=["graphql-transport-ws"]) as third:  # type: ignore[list-item]
                assert await Socket(third).close_code() == 4429
            await Socket(first).init({"Authorization": f"Bearer {api.token('alice')}"})
            assert (await Socket(first).message())["type"] == "connection_ack"
            await Socket(second).init({"Authorization": f"Bearer {api.token('bob')}"})
            assert (await Socket(second).message())["type"] == "connection_ack"


async def test_a_refused_argument_after_a_read_logs_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A field refusing its arguments cancels its siblings, one of which may hold the
    request's connection in an open transaction: the pool logged a warning for each
    such request (a client could fill the log at will); the transaction is ended before
    the connection goes back."""
    query = """query ($a: String!, $b: DateRange) {
      wallet(address: $a) {
        accountValue(between: $b) { day } balances { coin } positions { coin }
      }
    }"""
    b = {"from": api.seeded.day(0), "to": api.seeded.day(5)}
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            message = await bad_input(api, query, {"a": W1, "b": b})
            assert "a range needs from <= to" in message
        assert (await api.data(HEALTHY)) == {"dashboardSummary": {"trackedWallets": 3}}
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [m for m in warned if m.startswith("rolling back returned connection")] == []
