"""Hostile documents are refused before anything runs, quickly, and the server keeps
serving; `limit` is validated; introspection and GraphiQL follow GRAPHIQL; unexpected
errors are masked for clients and logged with the request id."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import psycopg
import pytest
from graphql import get_introspection_query

from tests.integration.graph.conftest import Api, running_api, settings
from tests.integration.graph.seed import Seeded

HEALTHY = "{ dashboardSummary { trackedWallets } }"


async def refused(api: Api, query: str, words: str, status: int = 400) -> httpx.Response:
    start = time.perf_counter()
    response = await api.post(query)
    elapsed = time.perf_counter() - start
    payload = response.json()
    assert response.status_code == status, payload
    assert "data" not in payload or payload["data"] is None
    assert any(words in e["message"] for e in payload["errors"]), payload
    assert elapsed < 5.0, f"took {elapsed:.2f} s to refuse"  # not executed: fast even when loaded
    assert (await api.data(HEALTHY)) == {"dashboardSummary": {"trackedWallets": 3}}
    return response


async def test_deep_nesting(api: Api) -> None:
    deep = '{ wallet(address: "0x") { days ' + "{ day " * 20 + "}" * 21 + " }"
    await refused(api, deep, "exceeds maximum operation depth")
    # Introspection is not depth-limited (GraphiQL needs 13 levels) but token-limited.
    ofs = "{ __schema { types { fields { type " + "{ ofType " * 500 + "{ name }" + " }" * 500
    await refused(api, ofs + " } } } }", "Parsing aborted")
    absurd = "{ dashboardSummary " + "{ latest " * 5000 + "}" * 5001
    await refused(api, absurd, "Parsing aborted")


async def test_aliases(api: Api) -> None:
    forty = "{ " + " ".join(f"a{i}: dashboardSummary {{ day }}" for i in range(40)) + " }"
    await refused(api, forty, "aliases")
    thousand = "{ " + " ".join(f"a{i}: globalMetrics {{ day }}" for i in range(1000)) + " }"
    await refused(api, thousand, "tokens")


async def test_huge_documents(api: Api) -> None:
    big = "{ dashboardSummary { day } }" + " " * (2 * 1024 * 1024)
    response = await api.client.post(
        api.url + "/graphql",
        content=b'{"query": "' + big.encode() + b'"}',
        headers={
            "Authorization": f"Bearer {api.token('alice')}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400
    assert "larger than" in response.json()["errors"][0]["message"]
    fields = "{ dashboardSummary { " + "day " * 3000 + "} }"
    await refused(api, fields, "tokens")


async def test_fragment_cycles_and_unknown_fields(api: Api) -> None:
    cycle = "{ dashboardSummary { ...A } } fragment A on DashboardSummary { ...B } "
    cycle += "fragment B on DashboardSummary { ...A }"
    await refused(api, cycle, "Cannot spread fragment")
    await refused(api, "{ orgs { id } }", "Cannot query field 'orgs'")
    await refused(api, "{ dashboardSummary { day }", "Syntax Error")


async def test_server_keeps_serving_under_a_hostile_burst(api: Api) -> None:
    hostile = "{ " + " ".join(f"a{i}: globalMetrics {{ day }}" for i in range(1000)) + " }"
    responses = await asyncio.gather(
        *(api.post(hostile) for _ in range(20)), *(api.post(HEALTHY) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [400] * 20 + [200] * 20


@pytest.mark.parametrize("limit", [0, -1, 101, 100000])
async def test_limit_out_of_range_is_a_validation_error(api: Api, limit: int) -> None:
    response = await refused(api, f"{{ topWallets(limit: {limit}) {{ rank }} }}", "out of range")
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    with_variable = await api.post(
        "query ($n: Int!) { topWallets(limit: $n) { rank } }", {"n": limit}
    )
    assert with_variable.status_code == 400
    assert "between 1 and 100" in with_variable.json()["errors"][0]["message"]


async def test_limit_bounds_and_variable_defaults(api: Api) -> None:
    for limit in (1, 100):
        data = await api.data(f"{{ topWallets(limit: {limit}) {{ rank }} }}")
        assert len(data["topWallets"]) == min(limit, 2)
    await refused(api, "query ($n: Int = 500) { topWallets(limit: $n) { rank } }", "out of range")
    data = await api.data("query ($n: Int = 500) { topWallets(limit: $n) { rank } }", {"n": 1})
    assert data == {"topWallets": [{"rank": 1}]}


async def test_bad_transport(api: Api) -> None:
    auth = {"Authorization": f"Bearer {api.token('alice')}"}
    url = api.url + "/graphql"
    cases = [
        await api.client.post(
            url, content=b"{not json", headers={**auth, "Content-Type": "application/json"}
        ),
        await api.client.post(url, json=[{"query": HEALTHY}], headers=auth),
        await api.client.post(
            url, content=HEALTHY.encode(), headers={**auth, "Content-Type": "text/plain"}
        ),
        await api.client.post(url, json={"query": HEALTHY, "variables": [1]}, headers=auth),
        await api.client.post(url, json={"query": 5}, headers=auth),
        await api.client.get(url, headers=auth),
    ]
    assert [r.status_code for r in cases] == [400] * 6
    assert (await api.client.put(url, json={"query": HEALTHY}, headers=auth)).status_code == 405


async def test_introspection_follows_graphiql(api: Api, db_url: str, seeded: Seeded) -> None:
    # GraphiQL's own introspection query passes the depth limit when GraphiQL is on.
    data = await api.data(get_introspection_query())
    assert data["__schema"]["queryType"]["name"] == "Query"
    async with running_api(db_url, seeded, settings(GRAPHIQL="0")) as production:
        await refused(production, "{ __schema { types { name } } }", "introspection")
        await refused(production, '{ __type(name: "Query") { name } }', "introspection")
        page = await production.client.get(
            production.url + "/graphql", headers={"Accept": "text/html"}
        )
        assert page.status_code == 400
        assert "graphiql" not in page.text.lower()


async def test_unexpected_errors_are_masked_and_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE global_day_metrics RENAME TO global_day_metrics_gone")
    with caplog.at_level(logging.ERROR, logger="graph"):
        response = await api.post("{ globalMetrics(range: D7) { day } }")
    request_id = response.headers["x-request-id"]
    payload = response.json()
    assert payload["data"] is None
    assert payload["errors"][0]["message"] == f"internal error (request id {request_id})"
    assert payload["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    for leak in ("global_day_metrics", "relation", "SELECT", "Traceback", "psycopg"):
        assert leak not in response.text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert logged and logged[0].exc_info is not None
    assert "global_day_metrics" in str(logged[0].exc_info[1])
