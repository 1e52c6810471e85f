"""Monthly partitions of hl_fills_raw: created ahead, default catches the rest."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg

from storage import fills, orgs
from tests.factories import address, fill, ms


def _month_start(offset: int) -> date:
    today = datetime.now(UTC).date()
    index = today.year * 12 + today.month - 1 + offset
    return date(index // 12, index % 12 + 1, 1)


def _ms(day: date) -> int:
    return ms(day.year, day.month, day.day, 12)


def _wallet(conn: psycopg.Connection) -> int:
    return orgs.upsert_wallets(conn, [address(1)])[0].id


def test_partitions_exist_ahead_after_migrate(conn: psycopg.Connection) -> None:
    names = {
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'hl_fills_raw'::regclass"
        )
    }
    for offset in range(3):
        assert f"hl_fills_raw_p{_month_start(offset):%Y%m}" in names
    assert "hl_fills_raw_default" in names


def test_fills_of_any_date_land_in_right_partition(conn: psycopg.Connection) -> None:
    wallet = _wallet(conn)
    cases = {
        1: (_month_start(-12), "hl_fills_raw_default"),
        2: (_month_start(0), f"hl_fills_raw_p{_month_start(0):%Y%m}"),
        3: (_month_start(2), f"hl_fills_raw_p{_month_start(2):%Y%m}"),
        4: (_month_start(36), "hl_fills_raw_default"),
    }
    result = fills.insert_fills(
        conn, wallet, [fill(_ms(day), tid=tid, oid=tid) for tid, (day, _) in cases.items()]
    )
    assert result.inserted == 4
    for tid, (_, partition) in cases.items():
        assert fills.partition_of(conn, wallet, tid, tid) == partition


def test_maintenance_moves_past_months_out_of_default_and_is_idempotent(
    conn: psycopg.Connection,
) -> None:
    wallet = _wallet(conn)
    last_year = _month_start(-12)
    far_future = _month_start(36)
    fills.insert_fills(conn, wallet, [fill(_ms(last_year), tid=1), fill(_ms(far_future), tid=2)])
    assert fills.ensure_partitions(conn) == 1
    assert fills.partition_of(conn, wallet, 1, 1) == f"hl_fills_raw_p{last_year:%Y%m}"
    assert fills.partition_of(conn, wallet, 2, 1) == "hl_fills_raw_default"
    assert fills.ensure_partitions(conn) == 0
    assert fills.count_fills(conn, wallet) == 2


def test_creating_a_month_moves_its_rows_from_default(conn: psycopg.Connection) -> None:
    wallet = _wallet(conn)
    month = _month_start(30)
    fills.insert_fills(conn, wallet, [fill(_ms(month), tid=7), fill(_ms(month) + 1, tid=8)])
    assert fills.create_partition(conn, month) is True
    assert fills.create_partition(conn, month) is False
    for tid in (7, 8):
        assert fills.partition_of(conn, wallet, tid, 1) == f"hl_fills_raw_p{month:%Y%m}"
    # the identity still holds across the move
    assert fills.insert_fills(conn, wallet, [fill(_ms(month), tid=7)]).inserted == 0
