"""coinBreakdown and WalletMetrics.coins, from fills rolled up by the pipeline's
statements, against the per-coin computation of tests/integration/pipeline/expected.py."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from storage import markets, orgs, rollups
from storage.fills import Fill
from storage.markets import Resolution
from tests.factories import address, fill, ms
from tests.integration.graph.conftest import Api
from tests.integration.pipeline.expected import CoinDay, Expected, kind, store, utc_day

W5, W6, W7 = address(5), address(6), address(7)
COINS = ["BTC", "ETH", "xyz:TSLA", "@107", "@4", "PURR/USDC", "#10"]
FIELDS = "coin displayName market dex tradeCount volumeUsd feesUsd realizedPnlUsd wallets"


def random_fills(rng: random.Random, today: date, tid_base: int) -> list[Fill]:
    out = []
    for i in range(30):
        day = today - timedelta(days=rng.choice([0, 0, 1, 5, 40]))
        coin = rng.choice(COINS)
        spot = kind(coin) == "spot"
        out.append(
            fill(
                ms(day.year, day.month, day.day, rng.randint(0, 23), rng.randint(0, 59)),
                tid=tid_base + i,
                coin=coin,
                px=Decimal(rng.randint(1, 10**6)) / Decimal(10 ** rng.randint(0, 4)),
                sz=Decimal(rng.randint(1, 10**5)) / Decimal(10 ** rng.randint(0, 5)),
                fee=Decimal(rng.randint(-200, 3000)) / Decimal(10**6),
                fee_token=rng.choice(["HYPE", "USDC", "PURR"]) if spot else "USDC",
                closed_pnl=Decimal(rng.randint(-(10**5), 10**5)) / Decimal(1000),
                dir=rng.choice(["Open Long", "Buy", "Sell", "Settlement"]),
            )
        )
    return out


def plant(api: Api) -> tuple[Expected, dict[str, int]]:
    """W5, W6, W7 for the org of erin (empty until now); W7 for bob's org too."""
    rng = random.Random(17)
    today = api.seeded.today
    expected = Expected()
    with psycopg.connect(api.db_url) as conn:
        orgs.track_wallets(conn, api.seeded.org_empty, [W5, W6, W7])
        orgs.track_wallets(conn, api.seeded.org_b, [W7])
        ids = {w.address: w.id for w in orgs.upsert_wallets(conn, [W5, W6, W7])}
        for n, wallet_id in enumerate(ids.values()):
            batch = random_fills(rng, today, n * 1000)
            store(conn, wallet_id, batch)
            expected.add(wallet_id, batch)
        markets.resolve(conn, [Resolution("@107", "HYPE", "USDC", "HYPE/USDC")])
        days = sorted({utc_day(f_time) for f_time in _times(conn)})
        for day in days:
            rollups.rebuild_wallet_days(conn, list(ids.values()), day)
            for org in (api.seeded.org_empty, api.seeded.org_b):
                rollups.rebuild_org_day(conn, org, day)
    return expected, ids


def _times(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT time FROM hl_fills_raw")]


def six(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.000001')):f}"


def as_api(rows: list[tuple[str, CoinDay]]) -> list[dict[str, Any]]:
    return [
        {
            "coin": coin,
            "displayName": "HYPE/USDC" if coin == "@107" else coin,
            "market": kind(coin).upper(),
            "dex": coin.split(":")[0] if ":" in coin else None,
            "tradeCount": c.trade_count,
            "volumeUsd": six(c.volume),
            "feesUsd": six(c.fees),
            "realizedPnlUsd": six(c.pnl),
            "wallets": c.wallets,
        }
        for coin, c in rows
    ]


async def test_org_and_wallet_breakdowns_match_the_rules(api: Api) -> None:
    expected, ids = plant(api)
    today = api.seeded.today
    d30 = today - timedelta(days=29)
    data = await api.data(f"{{ coinBreakdown(range: D30) {{ {FIELDS} }} }}", user="erin")
    want = as_api(expected.coin_breakdown(ids.values(), d30, today))
    assert data["coinBreakdown"] == want
    assert {c["market"] for c in want} >= {"PERP", "SPOT"}

    old = today - timedelta(days=40)
    data = await api.data(
        f"query ($b: DateRange) {{ coinBreakdown(between: $b) {{ {FIELDS} }} }}",
        {"b": {"from": old.isoformat(), "to": old.isoformat()}},
        user="erin",
    )
    assert data["coinBreakdown"] == as_api(expected.coin_breakdown(ids.values(), old, old))

    # One wallet's coins, over the wallet's range.
    data = await api.data(
        f'{{ wallet(address: "{W6}", range: D7) {{ coins {{ {FIELDS} }} }} }}', user="erin"
    )
    d7 = today - timedelta(days=6)
    assert data["wallet"]["coins"] == as_api(expected.coin_breakdown([ids[W6]], d7, today))

    # The coins add up to the org's days.
    data = await api.data(
        "{ coinBreakdown(range: D30) { tradeCount volumeUsd feesUsd realizedPnlUsd } "
        "globalMetrics(range: D30) { tradeCount totalVolumeUsd feesUsd realizedPnlUsd } }",
        user="erin",
    )

    def total(rows: list[dict[str, Any]], name: str) -> Decimal:
        return sum((Decimal(r[name]) for r in rows), Decimal(0))

    coins, series = data["coinBreakdown"], data["globalMetrics"]
    assert sum(c["tradeCount"] for c in coins) == sum(d["tradeCount"] for d in series)
    tolerance = Decimal("0.000001") * len(coins + series)  # each figure rounded to 6 places
    assert abs(total(coins, "volumeUsd") - total(series, "totalVolumeUsd")) <= tolerance
    assert abs(total(coins, "feesUsd") - total(series, "feesUsd")) <= tolerance


async def test_scoping(api: Api) -> None:
    expected, ids = plant(api)
    today = api.seeded.today
    d30 = today - timedelta(days=29)
    # Bob's org shares W7 only: its breakdown holds W7's coins and nothing of W5 or W6.
    data = await api.data(f"{{ coinBreakdown {{ {FIELDS} }} }}", user="bob")
    assert data["coinBreakdown"] == as_api(expected.coin_breakdown([ids[W7]], d30, today))
    # Alice's org tracks none of them.
    data = await api.data("{ coinBreakdown { coin } }", user="alice")
    assert data["coinBreakdown"] == []
    data = await api.data(f'{{ wallet(address: "{W5}") {{ coins {{ coin }} }} }}')
    assert data == {"wallet": None}


async def test_bad_range(api: Api) -> None:
    response = await api.post(
        'query { coinBreakdown(between: {from: "2026-01-02", to: "2026-01-01"}) { coin } }'
    )
    payload = response.json()
    assert payload["data"] is None
    (err,) = payload["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "a range needs from <= to" in err["message"]
