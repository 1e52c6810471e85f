"""Idempotent append of fills, keyed on (wallet, tid, oid)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg

from storage import fills, orgs
from tests.factories import address, fill, ms


def test_same_fill_twice_is_stored_once(conn: psycopg.Connection) -> None:
    wallet = orgs.upsert_wallets(conn, [address(1)])[0].id
    f = fill(ms(2026, 11, 2, 10), tid=10, oid=20)
    assert fills.insert_fills(conn, wallet, [f]).inserted == 1
    assert fills.insert_fills(conn, wallet, [f]).inserted == 0
    assert fills.count_fills(conn, wallet) == 1


def test_batch_with_duplicates_and_self_trade(conn: psycopg.Connection) -> None:
    wallet = orgs.upsert_wallets(conn, [address(1)])[0].id
    t = ms(2026, 11, 2, 10)
    batch = [fill(t, tid=5, oid=1), fill(t, tid=5, oid=1), fill(t, tid=5, oid=2, side="A")]
    result = fills.insert_fills(conn, wallet, batch)
    assert result.inserted == 2
    assert result.new_per_day == {date(2026, 11, 2): 2}
    assert fills.count_fills(conn, wallet) == 2


def test_same_fill_for_two_wallets_is_kept_per_wallet(conn: psycopg.Connection) -> None:
    w1, w2 = (w.id for w in orgs.upsert_wallets(conn, [address(1), address(2)]))
    f = fill(ms(2026, 11, 2), tid=1, oid=1)
    assert fills.insert_fills(conn, w1, [f]).inserted == 1
    assert fills.insert_fills(conn, w2, [f]).inserted == 1


def test_new_fills_are_counted_per_utc_day(conn: psycopg.Connection) -> None:
    wallet = orgs.upsert_wallets(conn, [address(1)])[0].id
    midnight = ms(2026, 11, 3)
    batch = [fill(midnight - 1, tid=1), fill(midnight, tid=2), fill(midnight + 1, tid=3)]
    result = fills.insert_fills(conn, wallet, batch)
    assert result.new_per_day == {date(2026, 11, 2): 1, date(2026, 11, 3): 2}


def test_values_are_stored_exactly(conn: psycopg.Connection) -> None:
    wallet = orgs.upsert_wallets(conn, [address(1)])[0].id
    f = fill(
        ms(2026, 11, 2),
        px=Decimal("0.000012345678901234567890"),
        fee=Decimal("-0.00000001"),
        builder_fee=Decimal("0.5"),
        liquidated_user=address(9),
        liquidation_mark_px=Decimal("99.9"),
        liquidation_method="market",
    )
    fills.insert_fills(conn, wallet, [f])
    row = conn.execute(
        "SELECT px, fee, builder_fee, liquidation_method FROM hl_fills_raw WHERE wallet_id = %s",
        (wallet,),
    ).fetchone()
    assert row == (f.px, f.fee, Decimal("0.5"), "market")


def test_quarantine_keeps_raw_and_reason(conn: psycopg.Connection) -> None:
    wallet = orgs.upsert_wallets(conn, [address(1)])[0].id
    fills.quarantine(conn, wallet, {"coin": "BTC", "px": "abc"}, "px is not a number")
    assert fills.quarantined_count(conn, wallet) == 1
