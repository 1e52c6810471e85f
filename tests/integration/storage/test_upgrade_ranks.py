"""Migration 0021 on a database with history: the standing ranks start empty and unbuilt
(rankings read the day totals meanwhile), and the scheduler's first tick builds them
from the wallet-days already rolled up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from jobs import scheduler
from storage import dashboard, ranks, read_models
from storage.migrate import migrate
from tests.factories import address
from tests.integration.storage.conftest import MigrateBefore
from tests.integration.storage.test_ranks import _check

WALLET_DAY = """
INSERT INTO wallet_day_metrics (wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd,
                                fees_usd, realized_pnl_usd)
VALUES (%s, %s, %s, 0, %s, 0.02, %s)
"""


def test_the_first_tick_after_the_upgrade_builds_the_ranks(
    empty_db: str, migrate_before: MigrateBefore
) -> None:
    migrate_before(empty_db, "0021")
    today = datetime.now(UTC).date()
    with psycopg.connect(empty_db) as conn:
        org = conn.execute("INSERT INTO orgs (name) VALUES ('A') RETURNING id").fetchone()
        assert org is not None
        for n in range(1, 5):
            row = conn.execute(
                "INSERT INTO wallets (address) VALUES (%s) RETURNING id", (address(n),)
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO org_wallets (org_id, wallet_id) VALUES (%s, %s)", (org[0], row[0])
            )
            # Days inside each span and before them all; one wallet idle for 60 days.
            for back in (0, 5, 20, 60, 120):
                if n == 4 and back < 60:
                    continue
                day = today - timedelta(days=back)
                conn.execute(WALLET_DAY, (row[0], day, n + back, 10 * n + back, n - back // 7))
        read_models.refresh_running_totals(conn, None, today - timedelta(days=400))

    migrate(empty_db)

    with psycopg.connect(empty_db) as conn:
        assert conn.execute(ranks.SELECT_THROUGH).fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM org_wallet_ranks").fetchone() == (0,)
        start = today - timedelta(days=6)
        assert "org_wallet_ranks" not in dashboard.top_wallets_sql(
            "VOLUME", start, today, None, None
        )
        conn.commit()
        assert scheduler.keep_day_totals(conn) > 0
        rows = _check(conn, today)
        # Three wallets traded within 7 days, four within 90.
        counts = {span: sum(1 for r in rows if r[2] == span) for span in ranks.SPANS}
        assert counts == {7: 3, 30: 3, 90: 4}
