"""WalletMetrics.fills: a wallet's fills, newest first, keyset-paginated, priced by the
rules (checked against tests/integration/pipeline/expected.py, not the SQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from graph import cursors
from storage import markets, orgs
from storage.fills import Fill
from storage.markets import Resolution
from tests.factories import fill, ms
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W2, W4
from tests.integration.pipeline.expected import kind, price, store

FILLS = """query ($a: String!, $first: Int, $after: String, $coin: String, $b: DateRange,
                  $range: MetricsRange! = D30) {
  wallet(address: $a, range: $range) {
    fills(first: $first, after: $after, coin: $coin, between: $b) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { time coin displayName market dex side dir px sz volumeUsd feeUsd
                            closedPnlUsd tid oid hash liquidation } }
    }
  }
}"""
BIG = 2**53 + 12345  # tids and oids beyond GraphQL's 32-bit Int


def planted(api: Api) -> list[Fill]:
    """W4's fills over three days: perps, a priced spot buy paying its fee in the base
    token, an unpriced spot pair, a HIP-3 perp without a known collateral, a burst in one
    millisecond, a self-trade, a liquidation, a dust conversion, an old fill."""
    today = api.seeded.today
    t0 = ms(today.year, today.month, today.day, 1)
    y = today - timedelta(days=1)
    t1 = ms(y.year, y.month, y.day, 23, 59, 59)
    old = today - timedelta(days=40)
    t_old = ms(old.year, old.month, old.day, 12)
    d = Decimal
    return [
        fill(t0, tid=BIG, oid=BIG + 1, px=d("97000.5"), sz=d("0.00123")),
        fill(t0, tid=BIG, oid=BIG + 2, side="A", dir="Close Long", closed_pnl=d("-1.5")),
        fill(t0, tid=7, oid=8, coin="@107", px=d("21.123456789"), sz=d("3"), fee=d("0.0021"),
             fee_token="HYPE", dir="Buy"),
        fill(t0, tid=7, oid=9, coin="@107", px=d("21.123456789"), sz=d("3"), fee=d("-0.01"),
             dir="Buy"),
        fill(t0 + 5, tid=9, oid=10, coin="@4", px=d("8"), sz=d("1"), fee=d("0.01"),
             fee_token="PURR", side="A", dir="Sell", closed_pnl=d("0.2")),
        fill(t0 + 6, tid=11, oid=12, coin="xyz:TSLA", px=d("250"), sz=d("1"), fee=d("0.05"),
             dir="Liquidated Cross Long", liquidated_user=W4, liquidation_mark_px=d("249"),
             liquidation_method="market"),
        fill(t0 + 7, tid=0, oid=0, coin="@1", dir="Spot Dust Conversion", fee=d("0.5"),
             px=d("1"), sz=d("0.000001"), hash="0x" + "00" * 32),
        fill(t1, tid=13, oid=14, coin="ETH", px=d("3000.0000005"), sz=d("1"), fee=d("0.0000005")),
        fill(t_old, tid=15, oid=16, coin="SOL", px=d("150"), sz=d("1")),
    ]  # fmt: skip


def plant(api: Api) -> list[Fill]:
    batch = planted(api)
    with psycopg.connect(api.db_url) as conn:
        (w4,) = orgs.upsert_wallets(conn, [W4])
        store(conn, w4.id, batch)
        markets.resolve(conn, [Resolution("@107", "HYPE", "USDC", "HYPE/USDC")])
    return batch


def six(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.000001')):f}"


def expected_node(f: Fill) -> dict[str, Any]:
    """The fill as the API should show it, from the rules of expected.py."""
    priced = price(f.coin, f.px, f.sz, f.fee, f.fee_token, f.closed_pnl)
    return {
        "time": datetime.fromtimestamp(f.time / 1000, UTC).isoformat(),
        "coin": f.coin,
        "displayName": "HYPE/USDC" if f.coin == "@107" else f.coin,
        "market": kind(f.coin).upper(),
        "dex": f.coin.split(":")[0] if ":" in f.coin else None,
        "side": f.side,
        "dir": f.dir,
        "px": str(f.px),
        "sz": str(f.sz),
        "volumeUsd": six(priced.volume),
        "feeUsd": six(priced.fee),
        "closedPnlUsd": six(priced.pnl),
        "tid": str(f.tid),
        "oid": str(f.oid),
        "hash": f.hash,
        "liquidation": f.liquidated_user is not None,
    }


def newest_first(batch: list[Fill]) -> list[Fill]:
    return sorted(batch, key=lambda f: (f.time, f.tid, f.oid, f.coin), reverse=True)


async def walk(api: Api, first: int, **variables: Any) -> list[dict[str, Any]]:
    """Every page of W4's fills, following endCursor to the end."""
    pages, after = [], None
    while True:
        data = await api.data(FILLS, {"a": W4, "first": first, "after": after, **variables})
        got = data["wallet"]["fills"]
        pages.append(got)
        assert len(pages) < 50
        if not got["pageInfo"]["hasNextPage"]:
            return pages
        after = got["pageInfo"]["endCursor"]


async def test_fills_newest_first_to_the_end(api: Api) -> None:
    batch = plant(api)
    recent = [f for f in batch if f.coin != "SOL"]  # SOL's is 40 days old: outside D30
    pages = await walk(api, first=2)
    nodes = [e["node"] for p in pages for e in p["edges"]]
    assert nodes == [expected_node(f) for f in newest_first(recent)]
    assert [len(p["edges"]) for p in pages] == [2, 2, 2, 2]
    assert [p["pageInfo"]["hasPreviousPage"] for p in pages] == [False, True, True, True]
    # Spot-checks of the rules, spelled out.
    by_key = {(n["coin"], n["oid"]): n for n in nodes}
    assert by_key[("@107", "8")]["feeUsd"] == "0.044359"  # 0.0021 HYPE × 21.123456789
    assert by_key[("@4", "10")]["volumeUsd"] is None  # quoted in PURR
    assert by_key[("@4", "10")]["closedPnlUsd"] is None
    assert by_key[("xyz:TSLA", "12")]["liquidation"] is True
    assert by_key[("xyz:TSLA", "12")]["market"] == "PERP"
    assert by_key[("xyz:TSLA", "12")]["dex"] == "xyz"
    assert by_key[("ETH", "14")]["feeUsd"] == "0.000000"  # 0.0000005: half to even, not -0
    assert by_key[("ETH", "14")]["px"] == "3000.0000005"  # Hyperliquid's own digits
    assert by_key[("BTC", str(BIG + 1))]["tid"] == str(BIG)
    # One page of all, and D90 reaching the old fill.
    everything = await api.data(FILLS, {"a": W4, "first": 200, "range": "D90"})
    assert len(everything["wallet"]["fills"]["edges"]) == len(batch)


async def test_coin_and_between_filters(api: Api) -> None:
    batch = plant(api)
    data = await api.data(FILLS, {"a": W4, "coin": "@107"})
    assert [e["node"] for e in data["wallet"]["fills"]["edges"]] == [
        expected_node(f) for f in newest_first([f for f in batch if f.coin == "@107"])
    ]
    yesterday = api.seeded.day(1)
    data = await api.data(FILLS, {"a": W4, "b": {"from": yesterday, "to": yesterday}})
    assert [e["node"]["coin"] for e in data["wallet"]["fills"]["edges"]] == ["ETH"]
    # `between` on the wallet bounds `fills` too, and fills' own `between` wins.
    data = await api.data(
        """query ($a: String!, $b: DateRange, $c: DateRange) {
             wallet(address: $a, between: $b) { fills(between: $c) { edges { node { coin } } } }
           }""",
        {"a": W4, "b": {"from": yesterday, "to": yesterday}, "c": None},
    )
    assert [e["node"]["coin"] for e in data["wallet"]["fills"]["edges"]] == ["ETH"]
    data = await api.data(FILLS, {"a": W1})  # tracked, no fills stored
    assert data["wallet"]["fills"] == {
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }


async def error_of(api: Api, variables: dict[str, Any], user: str = "alice") -> Any:
    response = await api.post(FILLS, variables, user=user)
    payload = response.json()
    assert response.status_code == 200, payload
    (err,) = payload["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT", err
    return err


async def test_scoping_and_bad_input(api: Api) -> None:
    plant(api)
    # Org B does not track W4: no wallet, so no fills.
    data = await api.data(FILLS, {"a": W4}, user="bob")
    assert data == {"wallet": None}
    first_page = (await api.data(FILLS, {"a": W4, "first": 1}))["wallet"]["fills"]
    cursor = first_page["pageInfo"]["endCursor"]
    # W4's cursor on W1 (same org), and org B's cursor of W2 (a wallet both orgs track).
    assert "cursor" in (await error_of(api, {"a": W1, "after": cursor}))["message"]
    b_cursor = cursors.encode("fills", api.seeded.org_b, [1, 1, 1, "BTC"], W2)
    assert "cursor" in (await error_of(api, {"a": W2, "after": b_cursor}))["message"]
    for bad in ("garbage", "", cursors.encode("wallets", api.seeded.org_a, [W4]),
                cursors.encode("fills", api.seeded.org_a, ["x", 1, 1, "BTC"], W4)):  # fmt: skip
        assert "cursor" in (await error_of(api, {"a": W4, "after": bad}))["message"]
    for first in (0, 201):
        assert "first must be 1..200" in (await error_of(api, {"a": W4, "first": first}))["message"]
    assert "NUL character" in (await error_of(api, {"a": W4, "coin": "BT\x00C"}))["message"]
    assert "1 to 100 allowed" in (await error_of(api, {"a": W4, "coin": ""}))["message"]
    today = api.seeded.today
    future = (today + timedelta(days=1)).isoformat()
    err = await error_of(api, {"a": W4, "b": {"from": future, "to": future}})
    assert "to <= today" in err["message"]
