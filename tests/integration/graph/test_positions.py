"""Positions and account value through the API, from snapshots stored as the snapshot
job stores them (the seed's wallet W4 of org A; W1 of org A too; org B sees neither)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from storage import orgs, positions
from storage.positions import Balance, PerpDex, Position, Snapshot
from tests.factories import ms
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W4

USD = ("USDC", "USDH", "USDT0", "USDE")
COLLATERAL = {"": "USDC", "xyz": "USDH"}  # dex "abc": collateral unknown


def pos(coin: str, dex: str, size: str, upnl: str, funding: str = "-1.5") -> Position:
    return Position(
        coin, dex, Decimal(size), Decimal("100.5"), Decimal("201"), Decimal(upnl), "cross",
        Decimal(5), Decimal("80.25"), Decimal("40.2"), Decimal(funding),
    )  # fmt: skip


def snapshot(taken_ms: int, value: str, *perps: tuple[str, list[Position]]) -> Snapshot:
    dexes = [PerpDex(dex, taken_ms, Decimal(value), Decimal(0), held) for dex, held in perps]
    balances = [
        Balance("USDC", Decimal("50.0000005"), Decimal(0), None),
        Balance("HFUN", Decimal("7"), Decimal(0), Decimal("210")),  # listed, not priced
    ]
    return Snapshot(taken_ms, dexes, balances)


async def test_positions_and_account_values_are_served(api: Api) -> None:
    today = api.seeded.today
    two_days_ago = today - timedelta(days=2)
    t = ms(today.year, today.month, today.day, 0)
    old = ms(two_days_ago.year, two_days_ago.month, two_days_ago.day, 23)
    with psycopg.connect(api.db_url) as conn:
        ids = {w.address: w.id for w in orgs.upsert_wallets(conn, [W4, W1])}
        positions.store(conn, ids[W4], snapshot(old, "900", ("", [])), COLLATERAL, USD)
        latest = snapshot(
            t,
            "1000.25",
            ("", [pos("ETH", "", "-2", "-12.5")]),
            ("xyz", [pos("xyz:TSLA", "xyz", "3", "4.0000004")]),
        )
        unpriced = PerpDex("abc", t, Decimal("777"), Decimal(0), [pos("abc:X", "abc", "1", "9")])
        latest.perps.append(unpriced)
        positions.store(conn, ids[W4], latest, COLLATERAL, USD)
        positions.store(conn, ids[W1], snapshot(t - 60_000, "10", ("", [])), COLLATERAL, USD)
        conn.commit()

    data = await api.data(
        """query($a: String!) {
             wallet(address: $a, range: D7) {
               accountValueUsd unrealizedPnlUsd positionsAsOf
               positions { coin dex size entryPx positionValueUsd unrealizedPnlUsd leverage
                           isolated liquidationPx marginUsedUsd fundingSinceOpenUsd }
               accountValue(range: D7) { day accountValueUsd }
               balances { coin total hold valueUsd }
             }
             dashboardSummary { accountValueUsd unrealizedPnlUsd openPositions positionsAsOf }
           }""",
        {"a": W4},
    )
    wallet = data["wallet"]
    # 1000.25 (default dex) + 1000.25 (xyz, USDH) + 50.0000005 USDC; dex abc unknown: out.
    assert wallet["accountValueUsd"] == "2050.500000"
    assert wallet["unrealizedPnlUsd"] == "-8.500000"  # -12.5 + 4.0000004, rounded once
    assert wallet["positionsAsOf"] == datetime.fromtimestamp(t / 1000, UTC).isoformat()
    by_coin = {p["coin"]: p for p in wallet["positions"]}
    assert list(by_coin) == ["ETH", "abc:X", "xyz:TSLA"]
    assert by_coin["ETH"] == {
        "coin": "ETH", "dex": None, "size": "-2", "entryPx": "100.5",
        "positionValueUsd": "201.000000", "unrealizedPnlUsd": "-12.500000", "leverage": "5",
        "isolated": False, "liquidationPx": "80.25", "marginUsedUsd": "40.200000",
        "fundingSinceOpenUsd": "-1.500000",
    }  # fmt: skip
    assert by_coin["abc:X"]["unrealizedPnlUsd"] is None and by_coin["abc:X"]["dex"] == "abc"
    # Every spot balance is listed; only a USD stablecoin's is priced (no guessed prices).
    assert wallet["balances"] == [
        {"coin": "HFUN", "total": "7", "hold": "0", "valueUsd": None},
        {"coin": "USDC", "total": "50.0000005", "hold": "0", "valueUsd": "50.000000"},
    ]
    series = {d["day"]: d["accountValueUsd"] for d in wallet["accountValue"]}
    assert len(series) == 7
    assert series[today.isoformat()] == "2050.500000"
    assert series[two_days_ago.isoformat()] == "950.000000"  # 900 + 50.0000005
    assert series[(today - timedelta(days=1)).isoformat()] is None

    summary = data["dashboardSummary"]
    assert summary["accountValueUsd"] == "2110.500001"  # W4 + W1 (10 + 50.0000005)
    assert summary["unrealizedPnlUsd"] == "-8.500000"
    assert summary["openPositions"] == 3
    assert summary["positionsAsOf"] == datetime.fromtimestamp((t - 60_000) / 1000, UTC).isoformat()


async def test_an_org_without_snapshots_sees_nulls(api: Api) -> None:
    data = await api.data(
        """{ dashboardSummary { accountValueUsd unrealizedPnlUsd openPositions positionsAsOf } }"""
    )
    assert data["dashboardSummary"] == {
        "accountValueUsd": None,
        "unrealizedPnlUsd": None,
        "openPositions": 0,
        "positionsAsOf": None,
    }
