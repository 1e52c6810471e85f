"""Migration 0012 on a database already rolled up: wallets get no label, and every
wallet-day is rolled up again by the workers (pending, with one `rollup_wallet_days`
message per day), which fills the per-coin rollup for the days before it existed."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import psycopg

from storage import markets, rollups
from storage.migrate import migrate
from tests.factories import address, ms
from tests.integration.storage.conftest import MigrateBefore

OLD_FILL = """
INSERT INTO hl_fills_raw (wallet_id, time, tid, oid, coin, side, px, sz, dir, start_position,
                          closed_pnl, fee, fee_token, hash, crossed)
VALUES (%s, %s, %s, 1, %s, 'B', 10, 1, 'Open Long', 0, 0, 0.01, 'USDC', '0x00', true)
"""
OLD_WALLET_DAY = """
INSERT INTO wallet_day_metrics (wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd,
                                fees_usd, realized_pnl_usd)
VALUES (%s, %s, 2, 0, 20, 0.02, 0)
"""


def test_rolled_up_days_are_rolled_up_again_with_their_coins(
    empty_db: str, migrate_before: MigrateBefore
) -> None:
    migrate_before(empty_db, "0012")
    day = date(2026, 11, 2)
    with psycopg.connect(empty_db) as conn:
        row = conn.execute(
            "INSERT INTO wallets (address) VALUES (%s) RETURNING id", (address(1),)
        ).fetchone()
        assert row is not None
        wallet_id = row[0]
        org = conn.execute("INSERT INTO orgs (name) VALUES ('A') RETURNING id").fetchone()
        assert org is not None
        conn.execute(
            "INSERT INTO org_wallets (org_id, wallet_id) VALUES (%s, %s)", (org[0], wallet_id)
        )
        for n, coin in enumerate(["BTC", "ETH"]):
            conn.execute(OLD_FILL, (wallet_id, ms(2026, 11, 2, 1), n, coin))
        conn.execute(OLD_WALLET_DAY, (wallet_id, day))

    migrate(empty_db)

    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT label FROM org_wallets").fetchall() == [(None,)]
        pending = conn.execute("SELECT day, wallet_id FROM rollup_pending").fetchall()
        assert pending == [(day, wallet_id)]
        jobs = conn.execute("SELECT actor, queue, state, dedup_key, message FROM jobs").fetchall()
        assert len(jobs) == 1
        actor, queue, state, dedup_key, message = jobs[0]
        assert (actor, queue, state, dedup_key) == (
            "rollup_wallet_days",
            "rollups",
            "queued",
            "rollup_wallet_days:2026-11-02",
        )
        body = message if isinstance(message, dict) else json.loads(message)
        assert body["args"] == ["2026-11-02"]
        # What that job does in the database (the coins recorded as an ingest records
        # them): the day's wallets, with their coins.
        markets.record(conn, ["BTC", "ETH"])
        done = rollups.rollup_pending_chunk(conn, day)
        assert done.wallet_ids == [wallet_id]
        coins = conn.execute(
            "SELECT coin, market, trade_count, volume_usd FROM wallet_coin_day_metrics "
            "ORDER BY coin"
        ).fetchall()
        assert coins == [("BTC", "perp", 1, Decimal(10)), ("ETH", "perp", 1, Decimal(10))]
