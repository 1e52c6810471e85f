"""The API driven by a real GraphQL client library (gql, over httpx), as a dashboard's
backend would: the schema fetched by introspection and every document validated
against it, queries, and pagination through trackedWallets and fills to the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLError

from tests.integration.graph import test_fills
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W2, W4

WALLETS = """
query Wallets($first: Int, $after: String) {
  trackedWallets(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { address label syncState unpricedFills } }
  }
}"""
FILLS = """
query Fills($address: String!, $first: Int, $after: String) {
  wallet(address: $address, range: D90) {
    fills(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { time coin market side px sz volumeUsd feeUsd tid oid liquidation } }
    }
  }
}"""


@pytest.fixture
async def session(api: Api) -> AsyncIterator[AsyncClientSession]:
    transport = HTTPXAsyncTransport(
        url=api.url + "/graphql",
        headers={"Authorization": f"Bearer {api.token('alice')}"},
        timeout=30,
    )
    client = Client(transport=transport, fetch_schema_from_transport=True)
    async with client as connected:
        yield connected


async def run(session: AsyncClientSession, query: str, **variables: Any) -> dict[str, Any]:
    return await session.execute(GraphQLRequest(query, variable_values=variables or None))


async def test_queries(session: AsyncClientSession, api: Api) -> None:
    data = await run(
        session,
        """query Dashboard($b: DateRange) {
             dashboardSummary { day trackedWallets latest { totalVolumeUsd avgVolumePerUser } }
             globalMetrics(between: $b) { day dau totalVolumeUsd }
             coinBreakdown(range: D7) { coin volumeUsd }
           }""",
        b={"from": api.seeded.day(2), "to": api.seeded.day(0)},
    )
    assert data["dashboardSummary"]["trackedWallets"] == 3
    assert data["dashboardSummary"]["latest"] == {
        "totalVolumeUsd": "600.875000",
        "avgVolumePerUser": "300.44",
    }
    assert [d["day"] for d in data["globalMetrics"]] == [api.seeded.day(n) for n in (2, 1, 0)]
    labelled = await run(
        session,
        "mutation Label($a: String!, $l: String) { labelWallet(address: $a, label: $l) "
        "{ address label } }",
        a=W1,
        l="desk 1",
    )
    assert labelled == {"labelWallet": {"address": W1, "label": "desk 1"}}


async def test_the_client_validates_and_reports_bad_input(session: AsyncClientSession) -> None:
    with pytest.raises(GraphQLError):  # not in the schema: refused by the client itself
        await run(session, "{ trackedWallets { nodes { address } } }")
    with pytest.raises(TransportQueryError) as caught:
        await run(session, WALLETS, first=500)
    assert caught.value.errors is not None
    assert caught.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_paging_to_the_end(session: AsyncClientSession, api: Api) -> None:
    addresses, after, pages = [], None, 0
    while True:
        page = (await run(session, WALLETS, first=2, after=after))["trackedWallets"]
        pages += 1
        assert page["totalCount"] == 3
        addresses += [e["node"]["address"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert (pages, addresses) == (2, sorted([W1, W2, W4]))

    planted = test_fills.plant(api)
    fills: list[dict[str, Any]] = []
    after = None
    while True:
        data = await run(session, FILLS, address=W4, first=3, after=after)
        connection = data["wallet"]["fills"]
        fills += [e["node"] for e in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    newest_first = test_fills.newest_first(planted)
    assert [(f["tid"], f["oid"], f["coin"]) for f in fills] == [
        (str(f.tid), str(f.oid), f.coin) for f in newest_first
    ]
