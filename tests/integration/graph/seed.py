"""A known data set: two orgs sharing a wallet, metric rows with exact decimals.

Days are relative to today (UTC) because globalMetrics always ends today.
Org A tracks W1, W2 and W4 (W4 never traded); org B tracks W2 and W3.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg

from storage import day_totals, orgs, ranks
from tests.factories import address

W1, W2, W3, W4 = address(1), address(2), address(3), address(4)
SYNCED = {
    W1: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    W2: datetime(2026, 1, 3, 0, 0, 0, tzinfo=UTC),
    W3: datetime(2026, 1, 5, 12, 30, 0, tzinfo=UTC),
}

# wallet, days ago, trades, spot, perp, fees, pnl
WALLET_DAYS = [
    (W1, 0, 3, "100.50", "200.25", "0.30", "12.5"),
    (W1, 1, 1, "0", "50", "0.05", "-2"),
    (W1, 10, 2, "10", "0", "0.01", "0"),
    (W1, 40, 5, "0", "1000", "0.5", "100"),
    (W2, 0, 2, "0", "300.125", "0.2", "7"),
    (W2, 2, 4, "40", "0", "-0.01", "1"),
    (W3, 0, 7, "0", "999", "1", "-5"),
    (W3, 1, 1, "1.5", "0", "0.001", "0"),
]

# org, days ago, dau, trades, spot, perp, total, fees, pnl, avg
GLOBAL_DAYS = [
    ("A", 0, 2, 5, "100.50", "500.375", "600.875", "0.50", "19.5", "300.44"),
    ("A", 1, 1, 1, "0", "50", "50", "0.05", "-2", "50.00"),
    ("A", 2, 1, 4, "40", "0", "40", "-0.01", "1", "40.00"),
    ("A", 10, 1, 2, "10", "0", "10", "0.01", "0", "10.00"),
    ("A", 40, 1, 5, "0", "1000", "1000", "0.5", "100", "1000.00"),
    ("B", 0, 2, 9, "0", "1299.125", "1299.125", "1.2", "2", "649.56"),
    ("B", 1, 1, 1, "1.5", "0", "1.5", "0.001", "0", "1.50"),
    ("B", 2, 1, 4, "40", "0", "40", "-0.01", "1", "40.00"),
]

INSERT_WALLET_DAY = """
INSERT INTO wallet_day_metrics
    (wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd, fees_usd, realized_pnl_usd)
VALUES ((SELECT id FROM wallets WHERE address = %s), %s, %s, %s, %s, %s, %s)
"""
INSERT_GLOBAL_DAY = """
INSERT INTO global_day_metrics (org_id, day, dau, trade_count, spot_volume_usd,
    perp_volume_usd, total_volume_usd, fees_usd, realized_pnl_usd, avg_volume_per_user)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
INSERT_CURSOR = """
INSERT INTO hl_ingest_cursor (wallet_id, last_success_at)
VALUES ((SELECT id FROM wallets WHERE address = %s), %s)
"""


@dataclass(frozen=True)
class Seeded:
    today: date
    org_a: uuid.UUID
    org_b: uuid.UUID
    org_empty: uuid.UUID

    def day(self, days_ago: int) -> str:
        return (self.today - timedelta(days=days_ago)).isoformat()


def today_utc() -> date:
    return datetime.now(UTC).date()


def seed(url: str) -> Seeded:
    today = today_utc()
    with psycopg.connect(url) as conn:
        a = orgs.create_org(conn, "Alpha").id
        b = orgs.create_org(conn, "Beta").id
        empty = orgs.create_org(conn, "Empty").id
        orgs.track_wallets(conn, a, [W1, W2, W4])
        orgs.track_wallets(conn, b, [W2, W3])
        # Tracked since before the syncs below (a sync before tracking is not reported).
        conn.execute("UPDATE org_wallets SET created_at = '2025-12-01T00:00:00Z'")
        orgs.add_user(conn, "alice", a, "admin")
        orgs.add_user(conn, "andy", a, "viewer")
        orgs.add_user(conn, "bob", b, "viewer")
        orgs.add_user(conn, "erin", empty, "viewer")
        for wallet, ago, trades, *money in WALLET_DAYS:
            day = today - timedelta(days=ago)
            conn.execute(INSERT_WALLET_DAY, (wallet, day, trades, *map(Decimal, money)))
        # The read models derived from the planted wallet-days, as the rollups and the
        # scheduler keep them.
        day_totals.refresh_read_models(conn, None, today - timedelta(days=400))
        day_totals.extend_day_totals(conn, today)
        ranks.shift(conn, today)
        for org, ago, dau, trades, *money in GLOBAL_DAYS:
            day = today - timedelta(days=ago)
            org_id = a if org == "A" else b
            conn.execute(INSERT_GLOBAL_DAY, (org_id, day, dau, trades, *map(Decimal, money)))
        for wallet, synced in SYNCED.items():
            conn.execute(INSERT_CURSOR, (wallet, synced))
    return Seeded(today, a, b, empty)
