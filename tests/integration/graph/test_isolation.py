"""Two orgs sharing a wallet: each sees exactly its own wallets and aggregates,
whatever the query and its arguments; no argument can name an org."""

from __future__ import annotations

import itertools

import pytest

from graph.schema import build_schema
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W2, W3, W4


@pytest.fixture
def api(shared_api: Api) -> Api:
    """These tests only read: one seeded API serves the whole module."""
    return shared_api


OWN = {"alice": {W1, W2, W4}, "bob": {W2, W3}}
OTHERS = {"alice": {W3}, "bob": {W1, W4}}


async def test_each_org_sees_its_own_numbers(api: Api) -> None:
    query = """{ dashboardSummary { latest { dau tradeCount totalVolumeUsd }
                 previous { totalVolumeUsd } trackedWallets lastSyncedAt } }"""
    alice = (await api.data(query, user="alice"))["dashboardSummary"]
    bob = (await api.data(query, user="bob"))["dashboardSummary"]
    assert alice == {
        "latest": {"dau": 2, "tradeCount": 5, "totalVolumeUsd": "600.875000"},
        "previous": {"totalVolumeUsd": "50.000000"},
        "trackedWallets": 3,
        "lastSyncedAt": "2026-01-03T00:00:00+00:00",
    }
    assert bob == {
        "latest": {"dau": 2, "tradeCount": 9, "totalVolumeUsd": "1299.125000"},
        "previous": {"totalVolumeUsd": "1.500000"},
        "trackedWallets": 2,
        "lastSyncedAt": "2026-01-05T12:30:00+00:00",
    }
    series = "{ globalMetrics(range: D90) { tradeCount } }"
    assert (
        sum(d["tradeCount"] for d in (await api.data(series, user="alice"))["globalMetrics"]) == 17
    )
    assert sum(d["tradeCount"] for d in (await api.data(series, user="bob"))["globalMetrics"]) == 14


async def test_top_wallets_of_bob(api: Api) -> None:
    data = await api.data(
        "{ topWallets(range: D30) { rank address tradeCount totalVolumeUsd activeDays } }",
        user="bob",
    )
    assert data["topWallets"] == [
        {
            "rank": 1,
            "address": W3,
            "tradeCount": 8,
            "totalVolumeUsd": "1000.500000",
            "activeDays": 2,
        },
        {
            "rank": 2,
            "address": W2,
            "tradeCount": 6,
            "totalVolumeUsd": "340.125000",
            "activeDays": 2,
        },
    ]


@pytest.mark.parametrize("user", ["alice", "bob"])
async def test_no_argument_reaches_another_org(api: Api, user: str) -> None:
    for range_name, order, limit in itertools.product(
        ("D7", "D30", "D90"), ("VOLUME", "TRADES", "PNL", "FEES"), (1, 2, 100)
    ):
        data = await api.data(
            f"{{ topWallets(range: {range_name}, orderBy: {order}, limit: {limit}) "
            "{ address } }",
            user=user,
        )
        addresses = {w["address"] for w in data["topWallets"]}
        assert addresses <= OWN[user]
        assert not addresses & OTHERS[user]
    for address in OWN[user] | OTHERS[user]:
        for range_name in ("D7", "D30", "D90"):
            data = await api.data(
                "query ($a: String!, $r: MetricsRange!) { wallet(address: $a, range: $r) "
                "{ address totals { tradeCount } } }",
                {"a": address, "r": range_name},
                user=user,
            )
            if address in OWN[user]:
                assert data["wallet"]["address"] == address
            else:
                assert data["wallet"] is None


async def test_shared_wallet_has_the_same_numbers_for_both(api: Api) -> None:
    query = (
        "query ($a: String!) { wallet(address: $a, range: D90) "
        "{ totals { tradeCount totalVolumeUsd } } }"
    )
    alice = await api.data(query, {"a": W2}, user="alice")
    bob = await api.data(query, {"a": W2}, user="bob")
    assert alice == bob == {"wallet": {"totals": {"tradeCount": 6, "totalVolumeUsd": "340.125000"}}}


def test_no_field_takes_an_org() -> None:
    schema = build_schema()._schema
    for type_ in schema.type_map.values():
        for name, field in getattr(type_, "fields", {}).items():
            for arg in getattr(field, "args", {}):
                assert "org" not in arg.lower(), f"{type_.name}.{name}({arg})"


async def test_an_org_argument_is_refused(api: Api) -> None:
    response = await api.post(
        '{ dashboardSummary(orgId: "00000000-0000-0000-0000-000000000000") { trackedWallets } }'
    )
    assert response.status_code == 400
    assert "Unknown argument 'orgId'" in response.json()["errors"][0]["message"]
