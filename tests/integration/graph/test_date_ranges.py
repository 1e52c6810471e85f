"""`between: DateRange` on globalMetrics, topWallets and wallet: any UTC days, inclusive."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import GLOBAL_DAYS, W1, W2, W3, WALLET_DAYS


@pytest.fixture
def api(shared_api: Api) -> Api:
    return shared_api


def between(api: Api, first_ago: int, last_ago: int) -> dict[str, str]:
    return {"from": api.seeded.day(first_ago), "to": api.seeded.day(last_ago)}


async def test_global_metrics_between_days_in_the_past(api: Api) -> None:
    data = await api.data(
        "query ($b: DateRange) { globalMetrics(range: D7, between: $b) "
        "{ day dau tradeCount totalVolumeUsd } }",
        {"b": between(api, 40, 10)},
    )
    series = data["globalMetrics"]
    start = date.fromisoformat(api.seeded.day(40))
    assert [s["day"] for s in series] == [
        (start + timedelta(days=i)).isoformat() for i in range(31)
    ]  # `range` ignored
    # From the seed's rows of org A, independently of the SQL.
    expected = {
        api.seeded.day(ago): (dau, trades, Decimal(total))
        for org, ago, dau, trades, _spot, _perp, total, *_ in GLOBAL_DAYS
        if org == "A" and 10 <= ago <= 40
    }
    got = {
        s["day"]: (s["dau"], s["tradeCount"], Decimal(s["totalVolumeUsd"]))
        for s in series
        if s["dau"]
    }
    assert got == expected
    assert all(s["totalVolumeUsd"] == "0.000000" for s in series if not s["dau"])


async def test_one_day_and_the_longest_range(api: Api) -> None:
    one = await api.data(
        "query ($b: DateRange) { globalMetrics(between: $b) { day dau } }",
        {"b": between(api, 1, 1)},
    )
    assert one["globalMetrics"] == [{"day": api.seeded.day(1), "dau": 1}]
    longest = await api.data(
        "query ($b: DateRange) { globalMetrics(between: $b) { day } }",
        {"b": between(api, 365, 0)},
    )
    assert len(longest["globalMetrics"]) == 366
    assert longest["globalMetrics"][-1]["day"] == api.seeded.day(0)


def wallet_sum(wallet: str, first_ago: int, last_ago: int) -> tuple[int, Decimal, int]:
    rows = [r for r in WALLET_DAYS if r[0] == wallet and last_ago <= r[1] <= first_ago]
    trades = sum(int(r[2]) for r in rows)  # type: ignore[call-overload]
    total = sum((Decimal(r[3]) + Decimal(r[4]) for r in rows), Decimal(0))  # type: ignore[arg-type]
    return trades, total, sum(1 for r in rows if int(r[2]) > 0)  # type: ignore[call-overload]


async def test_top_wallets_and_wallet_between(api: Api) -> None:
    data = await api.data(
        "query ($b: DateRange) { topWallets(between: $b) { rank address tradeCount "
        "totalVolumeUsd activeDays } }",
        {"b": between(api, 40, 2)},
    )
    expected = []
    for w in (W1, W2):
        trades, total, active = wallet_sum(w, 40, 2)
        expected.append((w, trades, total, active))
    expected.sort(key=lambda e: (-e[2], e[0]))
    assert [
        (r["address"], r["tradeCount"], Decimal(r["totalVolumeUsd"]), r["activeDays"])
        for r in data["topWallets"]
    ] == expected
    assert [r["rank"] for r in data["topWallets"]] == [1, 2]

    data = await api.data(
        "query ($a: String!, $b: DateRange) { wallet(address: $a, range: D90, between: $b) "
        "{ days { day } totals { tradeCount totalVolumeUsd activeDays } } }",
        {"a": W1, "b": between(api, 10, 1)},
    )
    trades, total, active = wallet_sum(W1, 10, 1)
    assert len(data["wallet"]["days"]) == 10
    assert data["wallet"]["totals"] == {
        "tradeCount": trades,
        "totalVolumeUsd": f"{total:.6f}",
        "activeDays": active,
    }


async def test_another_orgs_wallet_is_null_between_too(api: Api) -> None:
    data = await api.data(
        "query ($a: String!, $b: DateRange) { wallet(address: $a, between: $b) { address } }",
        {"a": W3, "b": between(api, 5, 0)},
    )
    assert data == {"wallet": None}


@pytest.mark.parametrize(
    ("first_ago", "last_ago", "rule"),
    [
        (0, 1, "a range needs from <= to"),
        (1, -1, "a range needs to <= today"),
        (366, 0, "a range covers at most 366 days"),
    ],
)
@pytest.mark.parametrize("field", ["globalMetrics", "topWallets", "wallet"])
async def test_bad_ranges_name_the_rule(
    api: Api, first_ago: int, last_ago: int, rule: str, field: str
) -> None:
    args = {"wallet": f'address: "{W1}", '}.get(field, "")
    response = await api.post(
        f"query ($b: DateRange) {{ {field}({args}between: $b) {{ __typename }} }}",
        {"b": between(api, first_ago, last_ago)},
    )
    payload: dict[str, Any] = response.json()
    assert response.status_code == 200, payload
    assert payload["data"] is None or payload["data"] == {field: None}
    (error,) = payload["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert rule in error["message"]


async def test_a_malformed_day_is_refused(api: Api) -> None:
    response = await api.post(
        'query { globalMetrics(between: {from: "2026-13-01", to: "2026-01-01"}) { day } }'
    )
    payload = response.json()
    assert "errors" in payload and payload.get("data") is None


@pytest.mark.parametrize("day", ["20261130", "2026-W48-1", "2026-11-30T00:00", "٢٠٢٦-11-30"])
async def test_a_date_is_only_yyyy_mm_dd(api: Api, day: str) -> None:
    """`Date` is YYYY-MM-DD (the schema, the CSV exports): Python's fromisoformat also
    reads basic and week dates, which were taken as days; as a literal or a variable,
    the client is told why, never an internal error."""
    today = api.seeded.day(0)
    literal = await api.post(
        f'{{ globalMetrics(between: {{from: "{day}", to: "{today}"}}) {{ day }} }}'
    )
    variable = await api.post(
        "query ($b: DateRange) { globalMetrics(between: $b) { day } }",
        {"b": {"from": day, "to": today}},
    )
    for response in (literal, variable):
        payload = response.json()
        assert payload.get("data") is None, payload
        assert "expected YYYY-MM-DD" in payload["errors"][0]["message"], payload
