"""Every query and field against the seeded database, decimals compared exactly."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W2, W3, W4


@pytest.fixture
def api(shared_api: Api) -> Api:
    """These tests only read: one seeded API serves the whole module."""
    return shared_api


DAY_FIELDS = """day dau tradeCount spotVolumeUsd perpVolumeUsd totalVolumeUsd feesUsd
realizedPnlUsd avgVolumePerUser"""
RANK_FIELDS = """rank address tradeCount spotVolumeUsd perpVolumeUsd totalVolumeUsd feesUsd
realizedPnlUsd activeDays"""


def day(api: Api, ago: int) -> str:
    return api.seeded.day(ago)


def zero_day(d: str) -> dict[str, object]:
    return {
        "day": d,
        "dau": 0,
        "tradeCount": 0,
        "spotVolumeUsd": "0.000000",
        "perpVolumeUsd": "0.000000",
        "totalVolumeUsd": "0.000000",
        "feesUsd": "0.000000",
        "realizedPnlUsd": "0.000000",
        "avgVolumePerUser": "0.00",
    }


def metrics_day(d: str, *values: object) -> dict[str, object]:
    keys = ["dau", "tradeCount", "spotVolumeUsd", "perpVolumeUsd", "totalVolumeUsd"]
    keys += ["feesUsd", "realizedPnlUsd", "avgVolumePerUser"]
    return {"day": d, **dict(zip(keys, values, strict=True))}


async def test_dashboard_summary(api: Api) -> None:
    data = await api.data(
        f"{{ dashboardSummary {{ day latest {{ {DAY_FIELDS} }} previous {{ {DAY_FIELDS} }} "
        "trackedWallets lastSyncedAt } }"
    )
    assert data["dashboardSummary"] == {
        "day": day(api, 0),
        "latest": metrics_day(
            day(api, 0),
            2,
            5,
            "100.500000",
            "500.375000",
            "600.875000",
            "0.500000",
            "19.500000",
            "300.44",
        ),
        "previous": metrics_day(
            day(api, 1),
            1,
            1,
            "0.000000",
            "50.000000",
            "50.000000",
            "0.050000",
            "-2.000000",
            "50.00",
        ),
        "trackedWallets": 3,
        "lastSyncedAt": "2026-01-03T00:00:00+00:00",
    }


async def test_dashboard_summary_of_an_org_without_fills(api: Api) -> None:
    data = await api.data(
        "{ dashboardSummary { day latest { day } previous { day } trackedWallets lastSyncedAt } }",
        user="erin",
    )
    assert data["dashboardSummary"] == {
        "day": None,
        "latest": None,
        "previous": None,
        "trackedWallets": 0,
        "lastSyncedAt": None,
    }


@pytest.mark.parametrize(("range_name", "days"), [("D7", 7), ("D30", 30), ("D90", 90)])
async def test_global_metrics_is_zero_filled_and_ends_today(
    api: Api, range_name: str, days: int
) -> None:
    data = await api.data(f"{{ globalMetrics(range: {range_name}) {{ {DAY_FIELDS} }} }}")
    series = data["globalMetrics"]
    today = date.fromisoformat(day(api, 0))
    assert [s["day"] for s in series] == [
        (today - timedelta(days=days - 1 - i)).isoformat() for i in range(days)
    ]
    known = {
        day(api, 0): metrics_day(
            day(api, 0),
            2,
            5,
            "100.500000",
            "500.375000",
            "600.875000",
            "0.500000",
            "19.500000",
            "300.44",
        ),
        day(api, 1): metrics_day(
            day(api, 1),
            1,
            1,
            "0.000000",
            "50.000000",
            "50.000000",
            "0.050000",
            "-2.000000",
            "50.00",
        ),
        day(api, 2): metrics_day(
            day(api, 2),
            1,
            4,
            "40.000000",
            "0.000000",
            "40.000000",
            "-0.010000",
            "1.000000",
            "40.00",
        ),
        day(api, 10): metrics_day(
            day(api, 10),
            1,
            2,
            "10.000000",
            "0.000000",
            "10.000000",
            "0.010000",
            "0.000000",
            "10.00",
        ),
        day(api, 40): metrics_day(
            day(api, 40),
            1,
            5,
            "0.000000",
            "1000.000000",
            "1000.000000",
            "0.500000",
            "100.000000",
            "1000.00",
        ),
    }
    for entry in series:
        assert entry == known.get(entry["day"], zero_day(entry["day"]))
    assert sum(1 for s in series if s["dau"]) == {"D7": 3, "D30": 4, "D90": 5}[range_name]


async def test_global_metrics_defaults_to_30_days(api: Api) -> None:
    data = await api.data("{ globalMetrics { day } }")
    assert len(data["globalMetrics"]) == 30


W1_D30 = [W1, 6, "110.500000", "250.250000", "360.750000", "0.360000", "10.500000", 3]
W2_D30 = [W2, 6, "40.000000", "300.125000", "340.125000", "0.190000", "8.000000", 2]


def rank(position: int, row: list[object]) -> dict[str, object]:
    keys = ["address", "tradeCount", "spotVolumeUsd", "perpVolumeUsd", "totalVolumeUsd"]
    keys += ["feesUsd", "realizedPnlUsd", "activeDays"]
    return {"rank": position, **dict(zip(keys, row, strict=True))}


@pytest.mark.parametrize("order", ["VOLUME", "TRADES", "PNL", "FEES"])
async def test_top_wallets_d30(api: Api, order: str) -> None:
    # W4 is tracked but never traded: absent. TRADES ties (6 and 6) go by address.
    data = await api.data(f"{{ topWallets(range: D30, orderBy: {order}) {{ {RANK_FIELDS} }} }}")
    assert data["topWallets"] == [rank(1, W1_D30), rank(2, W2_D30)]


async def test_top_wallets_d7_by_trades_and_limit(api: Api) -> None:
    data = await api.data("{ topWallets(range: D7, orderBy: TRADES) { rank address tradeCount } }")
    assert data["topWallets"] == [
        {"rank": 1, "address": W2, "tradeCount": 6},
        {"rank": 2, "address": W1, "tradeCount": 4},
    ]
    data = await api.data("{ topWallets(range: D90, limit: 1) { rank address totalVolumeUsd } }")
    assert data["topWallets"] == [{"rank": 1, "address": W1, "totalVolumeUsd": "1360.750000"}]
    data = await api.data("{ topWallets { address } }")  # defaults: D30, 20, VOLUME
    assert [w["address"] for w in data["topWallets"]] == [W1, W2]
    assert W4 not in str(data)


async def test_wallet_series_and_totals(api: Api) -> None:
    data = await api.data(
        """query ($a: String!) { wallet(address: $a, range: D7) {
            address lastSyncedAt
            days { day tradeCount spotVolumeUsd perpVolumeUsd totalVolumeUsd feesUsd
                   realizedPnlUsd }
            totals { tradeCount spotVolumeUsd perpVolumeUsd totalVolumeUsd feesUsd
                     realizedPnlUsd activeDays } } }""",
        {"a": W1.upper().replace("0X", "0x")},
    )
    wallet = data["wallet"]
    assert wallet["address"] == W1
    assert wallet["lastSyncedAt"] == "2026-01-02T03:04:05+00:00"
    assert [d["day"] for d in wallet["days"]] == [day(api, ago) for ago in range(6, -1, -1)]
    assert wallet["days"][-1] == {
        "day": day(api, 0),
        "tradeCount": 3,
        "spotVolumeUsd": "100.500000",
        "perpVolumeUsd": "200.250000",
        "totalVolumeUsd": "300.750000",
        "feesUsd": "0.300000",
        "realizedPnlUsd": "12.500000",
    }
    assert wallet["days"][-2]["realizedPnlUsd"] == "-2.000000"
    assert wallet["days"][0]["tradeCount"] == 0
    assert wallet["totals"] == {
        "tradeCount": 4,
        "spotVolumeUsd": "100.500000",
        "perpVolumeUsd": "250.250000",
        "totalVolumeUsd": "350.750000",
        "feesUsd": "0.350000",
        "realizedPnlUsd": "10.500000",
        "activeDays": 2,
    }


async def test_wallet_tracked_without_fills_and_untracked(api: Api) -> None:
    data = await api.data(
        "query ($a: String!) { wallet(address: $a) { days { day } totals { tradeCount "
        "activeDays } lastSyncedAt } }",
        {"a": W4},
    )
    assert len(data["wallet"]["days"]) == 30
    assert data["wallet"]["totals"] == {"tradeCount": 0, "activeDays": 0}
    assert data["wallet"]["lastSyncedAt"] is None
    data = await api.data("query ($a: String!) { wallet(address: $a) { address } }", {"a": W3})
    assert data == {"wallet": None}


async def test_wallet_with_a_bad_address_is_a_clear_error(api: Api) -> None:
    response = await api.post('{ wallet(address: "0x123") { address } }')
    payload = response.json()
    assert payload["data"] == {"wallet": None}
    assert payload["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "0x followed by 40 hexadecimal digits" in payload["errors"][0]["message"]


async def test_get_queries_and_aliases(api: Api) -> None:
    response = await api.client.get(
        api.url + "/graphql",
        params={"query": "{ a: globalMetrics(range: D7) { dau } s: dashboardSummary { day } }"},
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    assert response.status_code == 200
    assert [d["dau"] for d in response.json()["data"]["a"]] == [0, 0, 0, 0, 1, 1, 2]
    assert response.json()["data"]["s"] == {"day": day(api, 0)}
    assert len(response.headers["x-request-id"]) == 32


async def test_get_refuses_mutations(api: Api) -> None:
    response = await api.client.get(
        api.url + "/graphql",
        params={"query": f'mutation {{ untrackWallet(address: "{W3}") }}'},
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    assert response.status_code == 405
    assert "POST" in response.json()["errors"][0]["message"]


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.client.get(api.url + "/healthz")).json() == {"status": "ok"}
    ready = await api.client.get(api.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_not_ready_until_the_change_listener_listens(api: Api) -> None:
    """An instance whose change listener is not in place takes no traffic: it could not
    keep its cache honest, and its first LISTEN drops every cached answer."""
    listening = api.app.state.listener.listening
    listening.clear()
    try:
        ready = await api.client.get(api.url + "/readyz")
        assert ready.status_code == 503
        assert "listening for metric changes" in ready.json()["reason"]
    finally:
        listening.set()
    assert (await api.client.get(api.url + "/readyz")).status_code == 200


async def test_graphiql_in_a_browser(api: Api) -> None:
    response = await api.client.get(api.url + "/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
