"""A real GraphQL client library (gql, over its websockets transport) subscribed to
`metricsChanged` receives an event when a sync of its org's wallets (ingest from the
simulated exchange, then the rollups, by an in-process worker) changes its numbers."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import psycopg
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from graph.schema import SDL_PATH
from hlsim.server import SimServer
from storage import orgs
from tests.integration.graph.conftest import Api
from tests.integration.pipeline.expected import utc_day
from tests.integration.pipeline.support import pipeline, sync, worker
from tests.simulator import simulator, start_simulator

__all__ = ["simulator", "start_simulator"]  # fixtures

SUBSCRIPTION = "subscription Live { metricsChanged { days changedAt } }"


async def test_gql_receives_an_event_after_a_sync(api: Api, simulator: SimServer) -> None:
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        org = orgs.create_org(conn, "Live").id
        orgs.add_user(conn, "lena", org, "viewer")
        with conn.transaction():
            orgs.track_wallets(conn, org, simulator.market.wallets)
    transport = WebsocketsTransport(
        url=api.url.replace("http://", "ws://") + "/graphql",
        init_payload={"Authorization": f"Bearer {api.token('lena')}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    client = Client(transport=transport, schema=SDL_PATH.read_text())
    events: list[dict[str, Any]] = []
    async with client as session:

        async def listen() -> None:
            async for result in session.subscribe(GraphQLRequest(SUBSCRIPTION)):
                events.append(result["metricsChanged"])

        listening = asyncio.create_task(listen())
        hub = api.app.state.hub
        while hub.feeds(org) == 0:
            assert not listening.done(), listening
            await asyncio.sleep(0.02)

        def run_sync() -> None:
            with (
                psycopg.connect(api.db_url, autocommit=True) as auto,
                pipeline(api.db_url, simulator) as p,
                worker(p),
            ):
                sync(p, auto, org)

        await asyncio.to_thread(run_sync)
        traded = {
            utc_day(int(str(f["time"])))
            for wallet in simulator.market.wallets
            for f in simulator.market.fills(wallet)
        }
        seen: set[date] = set()
        async with asyncio.timeout(30):  # a guard against hanging: events come within seconds
            while not traded <= seen:
                while not events:
                    await asyncio.sleep(0.02)
                seen |= {date.fromisoformat(day) for day in events.pop(0)["days"]}
        listening.cancel()
