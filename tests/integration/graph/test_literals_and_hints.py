"""A huge integer literal is a client error; with GRAPHIQL=0 no message hints at the schema."""

from __future__ import annotations

import logging

import pytest

from tests.integration.graph.conftest import Api, running_api, settings
from tests.integration.graph.seed import Seeded

HINTED = [
    "{ globalMetrics(range: D9) { day } }",  # enum value
    "{ topWallets(limt: 3) { rank } }",  # argument
    "query ($r: MetricsRang) { globalMetrics(range: $r) { day } }",  # type name
    "{ dashboardSumary { day } }",  # field
]


async def test_a_5000_digit_integer_is_a_client_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    for digits in (5000, 400, 11):
        response = await api.post("{ topWallets(limit: " + "1" * digits + ") { rank } }")
        payload = response.json()
        assert response.status_code == 400, payload
        assert payload["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "internal error" not in response.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await api.post("{ topWallets(limit: 2) { rank } }")).status_code == 200


async def test_no_did_you_mean_with_graphiql_off(db_url: str, seeded: Seeded) -> None:
    async with running_api(db_url, seeded, settings(GRAPHIQL="0")) as api:
        for query in HINTED:
            response = await api.post(query)
            assert response.status_code == 400
            assert "Did you mean" not in response.text, response.text
        variable = "query ($r: MetricsRange) { globalMetrics(range: $r) { day } }"
        response = await api.post(variable, {"r": "D9"})
        assert "Did you mean" not in response.text, response.text
        assert "D90" not in response.text


async def test_hints_stay_with_graphiql_on(api: Api) -> None:
    response = await api.post(HINTED[0])
    assert "Did you mean the enum value 'D7' or 'D90'?" in response.text
