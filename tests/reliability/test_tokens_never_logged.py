"""Guarantee: no log line of the API records a bearer token, at any LOG_LEVEL.

The demo's GraphiQL link carries the token in the page's address (`?headers=`), so
the browser sends it to the API in the request line; tokens also arrive in headers
(good, bad, expired), in a websocket's `connection_init`, and pasted into query
strings. The real `hl-analytics api` process runs at DEBUG with GraphiQL on, and its
whole log is searched for every token sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.dbs import TestDatabases
from tests.integration.graph.seed import seed
from tests.reliability.api_support import ApiProcess, api_process, make_token


@pytest.fixture
def api(dbs: TestDatabases) -> Iterator[ApiProcess]:
    url = dbs.fresh()
    seed(url)
    try:
        with api_process(url, GRAPHIQL="1", LOG_LEVEL="DEBUG") as process:
            yield process
    finally:
        dbs.drop(url)


async def _subscribe(api: ApiProcess, token: str) -> None:
    url = api.url.replace("http://", "ws://") + f"/graphql?token={token}"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        await asyncio.wait_for(ws.recv(), 30)


def test_no_token_reaches_the_log(api: ApiProcess) -> None:
    good, expired = make_token("alice"), make_token("alice", expires_in=-3600)
    forged = make_token("alice", secret="not-the-servers-secret-0123456789abcdef")
    sent = [good, expired, forged, good + "x"]
    with httpx.Client(timeout=30) as client:
        headers = quote(json.dumps({"Authorization": f"Bearer {good}"}), safe="")
        page = client.get(f"{api.graphql}?headers={headers}", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "<html" in page.text.lower()
        for token in sent:
            client.post(
                api.graphql,
                json={"query": "{ dashboardSummary { day } }"},
                headers={"Authorization": f"Bearer {token}"},
            )
            export = f"{api.url}/export/daily.csv?token={token}"
            client.get(export, headers={"Authorization": token})
    asyncio.run(_subscribe(api, good))
    log = api.log()
    assert "listening for metric changes" in log  # the log is the server's, and at DEBUG
    # The handshake's line is kept, without its query string.
    assert "WebSocket /graphql" in log and "WebSocket /graphql?" not in log
    for token in sent:
        # A token's signature alone is a secret: no part of it may appear.
        assert token.rsplit(".", 1)[1] not in log
        assert token.split(".")[1] not in log
