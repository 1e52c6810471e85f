"""Every market kind priced in the right token, on fills built from Hyperliquid's docs.

The rules (storage.rollups): kind from the coin's spelling; volume in the quote
token, counted when that is a USD stablecoin; a fee in a USD stablecoin at par, in
the base token × px when the quote is one; anything else unpriced and counted once
in `unpriced_fills`; system fills (dust conversions, settlements, …) are not trades
but their fees and PnL count. Each test checks the stored wallet-day against the
independent computation of tests/integration/pipeline/expected.py and against
figures worked out by hand.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
import pytest

from jobs.hl_parse import parse_fill
from storage import fills, markets, orgs, rollups
from storage.markets import dex_of, market_kind
from tests.factories import address, fill, ms
from tests.integration.pipeline.expected import Expected, store

DAY = date(2026, 11, 2)
T = ms(2026, 11, 2, 12)
ZERO_HASH = "0x" + "0" * 64


def _wallet(conn: psycopg.Connection, n: int = 1) -> int:
    (wallet,) = orgs.upsert_wallets(conn, [address(n)])
    return wallet.id


def _rolled(conn: psycopg.Connection, wallet: int, batch: list[fills.Fill]) -> rollups.WalletDay:
    store(conn, wallet, batch)
    rollups.rebuild_wallet_day(conn, wallet, DAY)
    got = rollups.wallet_day(conn, wallet, DAY)
    assert got is not None
    expected = Expected()
    expected.add(wallet, batch)
    want = expected.wallet_days[(wallet, DAY)]
    assert (
        got.trade_count,
        got.spot_volume_usd,
        got.perp_volume_usd,
        got.outcome_volume_usd,
        got.total_volume_usd,
        got.fees_usd,
        got.realized_pnl_usd,
        got.unpriced_fills,
    ) == (
        want.trade_count,
        want.spot,
        want.perp,
        want.outcome,
        want.total,
        want.fees,
        want.pnl,
        want.unpriced,
    )
    return got


@pytest.mark.parametrize(
    ("coin", "kind", "dex"),
    [
        ("BTC", "perp", None),
        ("xyz:XYZ100", "perp", "xyz"),
        ("@107", "spot", None),
        ("PURR/USDC", "spot", None),
        ("#10", "outcome", None),
    ],
)
def test_kind_and_dex_follow_the_spelling_in_python_and_in_the_table(
    conn: psycopg.Connection, coin: str, kind: str, dex: str | None
) -> None:
    assert (market_kind(coin), dex_of(coin)) == (kind, dex)
    wallet = _wallet(conn)
    fills.insert_fills(conn, wallet, [fill(T, coin=coin)])
    row = conn.execute("SELECT market, dex FROM hl_fills_raw WHERE coin = %s", (coin,)).fetchone()
    assert row == (kind, dex)
    (recorded,) = markets.markets(conn, [coin])
    assert (recorded.market, recorded.dex) == (kind, dex)


def test_a_hip3_fee_in_its_collateral_counts_at_par_not_times_px(conn: psycopg.Connection) -> None:
    # The docs' HIP-3 example market on a dex whose collateral is USDH: 0.2 USDH of fee
    # on a fill at 250 is 0.2 USD, never 50.
    got = _rolled(
        conn,
        _wallet(conn),
        [
            fill(
                T,
                coin="xyz:TSLA",
                px=Decimal("250"),
                sz=Decimal("2"),
                fee=Decimal("0.2"),
                fee_token="USDH",
                closed_pnl=Decimal("-3"),
            )
        ],
    )
    assert (got.perp_volume_usd, got.fees_usd, got.realized_pnl_usd) == (500, Decimal("0.2"), -3)
    assert got.unpriced_fills == 0


def test_outcome_volume_is_its_own_and_in_the_total(conn: psycopg.Connection) -> None:
    got = _rolled(
        conn,
        _wallet(conn),
        [
            fill(T, tid=1, coin="#10", px=Decimal("0.42"), sz=Decimal("100"), fee=Decimal(0)),
            fill(T, tid=2, coin="BTC", px=Decimal("100"), sz=Decimal("1"), fee=Decimal("0.05")),
        ],
    )
    assert (got.outcome_volume_usd, got.perp_volume_usd, got.total_volume_usd) == (42, 100, 142)
    assert got.trade_count == 2


def test_spot_buy_fee_in_the_base_token_and_usdt0_and_nonstable_quotes(
    conn: psycopg.Connection,
) -> None:
    batch = [
        # HYPE/USDC (mainnet's @107): a buy pays 0.002 HYPE = 0.002 × 40 USD
        fill(T, tid=1, coin="@107", px=Decimal("40"), sz=Decimal("3"), fee=Decimal("0.002"),
             fee_token="HYPE"),
        # HYPE/USDT0: USDT0 is a USD stablecoin, at par
        fill(T, tid=2, coin="@3", px=Decimal("41"), sz=Decimal("2"), fee=Decimal("0.05"),
             fee_token="USDT0", closed_pnl=Decimal("1.5"), side="A", dir="Sell"),
        # JEFF/PURR: quoted in PURR, not a stablecoin: volume, fee and PnL unpriced
        fill(T, tid=3, coin="@4", px=Decimal("8"), sz=Decimal("10"), fee=Decimal("0.04"),
             fee_token="PURR", closed_pnl=Decimal("2"), side="A", dir="Sell"),
        # a buy on JEFF/PURR pays in JEFF: base token, but the quote has no USD value
        fill(T, tid=4, coin="@4", px=Decimal("8"), sz=Decimal("1"), fee=Decimal("0.001"),
             fee_token="JEFF", dir="Buy"),
    ]  # fmt: skip
    got = _rolled(conn, _wallet(conn), batch)
    assert got.spot_volume_usd == Decimal("120") + Decimal("82")
    assert got.fees_usd == Decimal("0.080") + Decimal("0.05")
    assert got.realized_pnl_usd == Decimal("1.5")
    assert (got.trade_count, got.unpriced_fills) == (4, 2)


def test_a_fee_in_an_unknown_token_and_a_coin_metadata_never_resolved_are_unpriced(
    conn: psycopg.Connection,
) -> None:
    batch = [
        fill(T, tid=1, coin="ETH", px=Decimal("3000"), sz=Decimal("1"), fee=Decimal("1"),
             fee_token="HFUN"),
        fill(T, tid=2, coin="@999", px=Decimal("5"), sz=Decimal("2"), fee=Decimal("0.01"),
             fee_token="USDC", closed_pnl=Decimal("7")),
    ]  # fmt: skip
    got = _rolled(conn, _wallet(conn), batch)
    # ETH's volume is priced (USDC quote); its HFUN fee is not. @999's quote is unknown:
    # no volume, no PnL, but its USDC fee counts at par.
    assert (got.perp_volume_usd, got.spot_volume_usd) == (3000, 0)
    assert (got.fees_usd, got.realized_pnl_usd, got.unpriced_fills) == (Decimal("0.01"), 0, 2)
    (unknown,) = markets.markets(conn, ["@999"])
    assert unknown.quote_token is None and not unknown.resolved


def test_dust_conversions_are_stored_each_and_count_fees_and_pnl_but_no_trade(
    conn: psycopg.Connection,
) -> None:
    wallet = _wallet(conn)

    def dust(coin: str, pnl: str) -> fills.Fill:
        return fill(T, tid=0, oid=0, coin=coin, px=Decimal("1.6"), sz=Decimal("1"), side="A",
                    dir="Spot Dust Conversion", hash=ZERO_HASH, crossed=False,
                    fee=Decimal("0.001"), closed_pnl=Decimal(pnl))  # fmt: skip

    batch = [dust("@1", "-0.02"), dust("@2", "0.01")]
    got = _rolled(conn, wallet, batch)
    assert fills.count_fills(conn, wallet) == 2, "two dust conversions in one millisecond"
    assert (got.trade_count, got.total_volume_usd) == (0, 0)
    assert (got.fees_usd, got.realized_pnl_usd) == (Decimal("0.002"), Decimal("-0.01"))
    # Stored again (a re-ingest): nothing doubles.
    assert fills.insert_fills(conn, wallet, batch).inserted == 0
    assert fills.count_fills(conn, wallet) == 2


def test_a_system_fill_alone_makes_an_org_day_without_dau_and_no_top_wallet(
    conn: psycopg.Connection,
) -> None:
    org = orgs.create_org(conn, "Acme")
    trader, duster = (w.id for w in orgs.track_wallets(conn, org.id, [address(1), address(2)])[0])
    store(conn, trader, [fill(T, tid=1, coin="BTC", px=Decimal("10"), sz=Decimal("1"))])
    store(conn, duster, [fill(T, tid=0, oid=0, coin="@1", dir="Spot Dust Conversion",
                              fee=Decimal("0.5"), closed_pnl=Decimal("2"))])  # fmt: skip
    rollups.rebuild_wallet_days(conn, [trader, duster], DAY)
    rollups.rebuild_org_day(conn, org.id, DAY)
    (day,) = rollups.org_days(conn, org.id)
    assert (day.dau, day.trade_count, day.total_volume_usd) == (1, 1, 10)
    assert day.fees_usd == Decimal("0.1") + Decimal("0.5")
    assert day.realized_pnl_usd == 2
    assert day.avg_volume_per_user == 10


def test_fields_the_parser_does_not_know_are_kept(conn: psycopg.Connection) -> None:
    raw = {
        "coin": "xyz:TSLA", "px": "259.07", "sz": "3.353", "side": "B", "time": T,
        "startPosition": "0.0", "dir": "Open Long", "closedPnl": "0.0", "hash": ZERO_HASH,
        "oid": 7, "crossed": True, "fee": "0.477764", "tid": 8, "feeToken": "USDH",
        "twapId": None, "builderFee": "0.086866", "builder": "0x" + "12" * 20,
        "deployerFee": "0.195449", "priorityGas": 3,
    }  # fmt: skip
    wallet = _wallet(conn)
    fills.insert_fills(conn, wallet, [parse_fill(raw)])
    (extra,) = conn.execute("SELECT extra FROM hl_fills_raw").fetchone() or (None,)
    assert extra == {"builder": "0x" + "12" * 20, "deployerFee": "0.195449", "priorityGas": 3}
