"""Funding, net PnL, deposits and withdrawals through the API, from payments and ledger
updates rolled up by the pipeline's statements (the seed's wallet W4, tracked by org A,
never traded before)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import psycopg

from storage import funding, ledger, orgs, rollups
from storage.funding import Funding
from storage.ledger import LedgerUpdate
from tests.factories import fill, ms
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W4
from tests.integration.pipeline.expected import resolve_planted, store

FIELDS = "tradeCount feesUsd realizedPnlUsd fundingUsd netPnlUsd depositsUsd withdrawalsUsd"


def update(time: int, cls: str, usdc: Decimal) -> LedgerUpdate:
    return LedgerUpdate(time, "0x" + f"{time:064x}", cls, cls, usdc, {"type": cls})


def pay(time: int, coin: str, usdc: str) -> Funding:
    return Funding(time, coin, Decimal(usdc), Decimal("1.5"), Decimal("0.0000125"))


async def test_funding_and_net_pnl_are_served_and_ranked(api: Api) -> None:
    today = api.seeded.today
    yesterday = today - timedelta(days=1)
    t = ms(today.year, today.month, today.day, 1)
    y = ms(yesterday.year, yesterday.month, yesterday.day, 23)
    with psycopg.connect(api.db_url) as conn:
        (w4,) = orgs.upsert_wallets(conn, [W4])
        store(conn, w4.id, [fill(t, closed_pnl=Decimal("10.0000004"), fee=Decimal("0.25"))])
        funding.insert_funding(
            conn,
            w4.id,
            [
                pay(y, "BTC", "-0.0000015"),  # a day with funding and no fill
                pay(t, "BTC", "-1.1250000005"),
                pay(t + 3_600_000, "xyz:TSLA", "0.5"),  # USDH collateral: at par
                pay(t + 3_600_000, "@4", "7"),  # not a USD-collateral perp: left out
            ],
        )
        ledger.insert_ledger(
            conn,
            w4.id,
            [
                update(y + 1, "deposit", Decimal("100.0000004")),
                update(t + 5, "withdrawal", Decimal("40.5")),
                update(t + 6, "vault_deposit", Decimal("7")),  # listed apart: not counted
            ],
        )
        resolve_planted(conn)
        for day in (yesterday, today):
            rollups.rebuild_wallet_days(conn, [w4.id], day)
            rollups.rebuild_org_day(conn, api.seeded.org_a, day)

    data = await api.data(
        f"""query($a: String!) {{
             wallet(address: $a, range: D7) {{
               days {{ day {FIELDS} }}
               totals {{ {FIELDS} activeDays }}
             }}
             net: topWallets(range: D7, limit: 100, orderBy: NET_PNL) {{ address netPnlUsd }}
             funding: topWallets(range: D7, limit: 100, orderBy: FUNDING) {{
               address fundingUsd }}
             globalMetrics(range: D7) {{ day dau fundingUsd netPnlUsd realizedPnlUsd feesUsd }}
           }}""",
        {"a": W4},
    )
    days = {d["day"]: d for d in data["wallet"]["days"]}
    assert days[yesterday.isoformat()] == {
        "day": yesterday.isoformat(),
        "tradeCount": 0,
        "feesUsd": "0.000000",
        "realizedPnlUsd": "0.000000",
        "fundingUsd": "-0.000002",  # -0.0000015 rounded half-even to 6 places
        "netPnlUsd": "-0.000002",
        "depositsUsd": "100.000000",
        "withdrawalsUsd": "0.000000",
    }
    # 10.0000004 - 0.25 + (-1.1250000005 + 0.5): rounded once, from the exact amounts.
    assert days[today.isoformat()]["fundingUsd"] == "-0.625000"
    assert days[today.isoformat()]["netPnlUsd"] == "9.125000"
    totals = data["wallet"]["totals"]
    assert totals["fundingUsd"] == "-0.625002"
    assert totals["netPnlUsd"] == "9.124999"
    assert totals["activeDays"] == 1, "a day of funding alone is not an active day"
    assert (totals["depositsUsd"], totals["withdrawalsUsd"]) == ("100.000000", "40.500000")

    for ranking, key in (("net", "netPnlUsd"), ("funding", "fundingUsd")):
        values = [Decimal(r[key]) for r in data[ranking]]
        assert values == sorted(values, reverse=True), ranking
    assert {r["address"]: r["netPnlUsd"] for r in data["net"]}[W4] == "9.124999"

    metrics = {d["day"]: d for d in data["globalMetrics"]}
    for d in metrics.values():
        net = Decimal(d["realizedPnlUsd"]) - Decimal(d["feesUsd"]) + Decimal(d["fundingUsd"])
        assert abs(Decimal(d["netPnlUsd"]) - net) <= Decimal("0.000002"), d
    assert Decimal(metrics[yesterday.isoformat()]["fundingUsd"]) == Decimal("-0.000002")
