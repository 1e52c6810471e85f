"""Outcome volume and unpriced fills through the API, from fills rolled up by the pipeline's
statements (the seed's wallet W4, tracked by org A, never traded before)."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from storage import orgs, rollups
from tests.factories import fill, ms
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W4
from tests.integration.pipeline.expected import store


async def test_outcome_volume_and_unpriced_fills_are_served(api: Api) -> None:
    today = api.seeded.today
    t = ms(today.year, today.month, today.day, 0)
    with psycopg.connect(api.db_url) as conn:
        (w4,) = orgs.upsert_wallets(conn, [W4])
        batch = [
            fill(t, tid=1, coin="#10", px=Decimal("0.5"), sz=Decimal("10"), fee=Decimal(0)),
            # JEFF/PURR: quoted in PURR, so its volume and fee have no USD value
            fill(t, tid=2, coin="@4", px=Decimal("8"), sz=Decimal("1"), fee=Decimal("0.01"),
                 fee_token="PURR", side="A", dir="Sell"),
            fill(t, tid=0, oid=0, coin="@1", dir="Spot Dust Conversion", fee=Decimal("0.5"),
                 px=Decimal("1"), sz=Decimal("1")),
        ]  # fmt: skip
        store(conn, w4.id, batch)
        rollups.rebuild_wallet_days(conn, [w4.id], today)
        rollups.rebuild_org_day(conn, api.seeded.org_a, today)

    data = await api.data(
        """query($a: String!) {
             wallet(address: $a, range: D7) {
               unpricedFills
               totals { tradeCount outcomeVolumeUsd spotVolumeUsd totalVolumeUsd feesUsd
                        activeDays }
             }
             globalMetrics(range: D7) { day outcomeVolumeUsd totalVolumeUsd dau }
             topWallets(range: D7, limit: 100) { address outcomeVolumeUsd }
           }""",
        {"a": W4},
    )
    wallet = data["wallet"]
    assert wallet["unpricedFills"] == 1
    totals = {k: Decimal(v) if isinstance(v, str) else v for k, v in wallet["totals"].items()}
    assert totals == {
        "tradeCount": 2,  # the dust conversion is not a trade
        "outcomeVolumeUsd": Decimal(5),
        "spotVolumeUsd": Decimal(0),
        "totalVolumeUsd": Decimal(5),
        "feesUsd": Decimal("0.5"),
        "activeDays": 1,
    }
    last = data["globalMetrics"][-1]
    assert last["day"] == today.isoformat()
    assert Decimal(last["outcomeVolumeUsd"]) == 5
    # The seed's org-day of today held W1 and W2 (600.875 in all); W4 adds its outcomes.
    assert Decimal(last["totalVolumeUsd"]) == Decimal("605.875")
    assert last["dau"] == 3
    ranked = {r["address"]: Decimal(r["outcomeVolumeUsd"]) for r in data["topWallets"]}
    assert ranked[W4] == 5
