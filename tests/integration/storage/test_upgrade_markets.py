"""Migration 0010 on a database that already holds fills: kind and dex are filled in from
the coin, every stored coin is recorded unresolved (the workers resolve it and roll its
days up again), and a wallet-day's total includes outcome volume."""

from __future__ import annotations

import psycopg

from storage.migrate import migrate
from tests.factories import address, ms
from tests.integration.storage.conftest import MigrateBefore

OLD_FILL = """
INSERT INTO hl_fills_raw (wallet_id, time, tid, oid, coin, side, px, sz, dir, start_position,
                          closed_pnl, fee, fee_token, hash, crossed)
VALUES (%s, %s, %s, 1, %s, 'B', 10, 1, 'Open Long', 0, 0, 0.01, 'USDC', '0x00', true)
"""


def test_stored_fills_get_kinds_and_their_coins_await_resolution(
    empty_db: str, migrate_before: MigrateBefore
) -> None:
    migrate_before(empty_db, "0010")
    coins = ["BTC", "xyz:TSLA", "@107", "PURR/USDC", "#10"]
    with psycopg.connect(empty_db) as conn:
        row = conn.execute(
            "INSERT INTO wallets (address) VALUES (%s) RETURNING id", (address(1),)
        ).fetchone()
        assert row is not None
        for n, coin in enumerate(coins):
            conn.execute(OLD_FILL, (row[0], ms(2026, 11, 2, 1), n, coin))

    migrate(empty_db)

    with psycopg.connect(empty_db) as conn:
        kinds = dict(
            (c, (m, d)) for c, m, d in conn.execute("SELECT coin, market, dex FROM hl_fills_raw")
        )
        assert kinds == {
            "BTC": ("perp", None),
            "xyz:TSLA": ("perp", "xyz"),
            "@107": ("spot", None),
            "PURR/USDC": ("spot", None),
            "#10": ("outcome", None),
        }
        recorded = conn.execute(
            "SELECT coin, quote_token, resolved_at FROM hl_markets ORDER BY coin"
        ).fetchall()
        assert [r[0] for r in recorded] == sorted(coins)
        assert all(quote is None and resolved is None for _, quote, resolved in recorded)
        # The partition function still moves rows out of the default partition.
        conn.execute("SELECT hl_ensure_fill_partitions(0)")
        assert conn.execute("SELECT count(*) FROM hl_fills_raw_default").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM hl_fills_raw").fetchone() == (len(coins),)
