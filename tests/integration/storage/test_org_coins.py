"""The org coin-days (storage/org_coins.py): the breakdown read from them equals the
per-coin sums and distinct traders counted from the wallet-coin-days of the wallets the
org tracks now, for any range, as wallets join and leave; ordinals stay unique under
concurrent inserts; migration 0020 derives the same rows from a database rolled up
before it."""

from __future__ import annotations

import random
import threading
from datetime import date, timedelta
from decimal import Decimal

import psycopg

from storage import org_coins, orgs, rollups
from storage.migrate import migrate
from tests.factories import address
from tests.integration.storage.conftest import MigrateBefore

FIRST = date(2026, 10, 1)
DAYS = 12
COINS = (("BTC", "perp"), ("@107", "spot"), ("xyz:TSLA", "perp"), ("#10", "outcome"))

INSERT_COIN_DAY = """
INSERT INTO wallet_coin_day_metrics (wallet_id, day, coin, market, trade_count, volume_usd,
                                     fees_usd, realized_pnl_usd)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""
# What a breakdown must answer: counted from the wallet-coin-days of the org's wallets.
EXPECTED = """
SELECT m.coin, m.market, sum(m.trade_count), sum(m.volume_usd), sum(m.fees_usd),
       sum(m.realized_pnl_usd), count(DISTINCT m.wallet_id) FILTER (WHERE m.trade_count > 0)
FROM org_wallets ow JOIN wallet_coin_day_metrics m ON m.wallet_id = ow.wallet_id
WHERE ow.org_id = %(org_id)s AND m.day BETWEEN %(start)s AND %(end)s
GROUP BY m.coin, m.market ORDER BY sum(m.volume_usd) DESC, m.coin
"""
ROWS = "SELECT * FROM org_coin_day_metrics ORDER BY org_id, day, coin"


def _plant(conn: psycopg.Connection, wallet_ids: list[int], rng: random.Random) -> None:
    """Random wallet-coin-days, some with no trade (fees of system fills only)."""
    for wallet_id in wallet_ids:
        for offset in range(DAYS):
            for coin, market in COINS:
                if rng.random() < 0.35:
                    conn.execute(
                        INSERT_COIN_DAY,
                        (
                            wallet_id,
                            FIRST + timedelta(days=offset),
                            coin,
                            market,
                            rng.choice([0, 1, 3, 20]),
                            Decimal(rng.randint(0, 10**7)) / 1000,
                            Decimal(rng.randint(-100, 10**4)) / 10**4,
                            Decimal(rng.randint(-(10**6), 10**6)) / 100,
                        ),
                    )


def _roll_up_org(conn: psycopg.Connection, org_id: object) -> None:
    for offset in range(DAYS):
        rollups.rebuild_org_day(conn, org_id, FIRST + timedelta(days=offset))  # type: ignore[arg-type]


def _ranges() -> list[tuple[date, date]]:
    last = FIRST + timedelta(days=DAYS - 1)
    return [
        (FIRST, last),
        (FIRST + timedelta(days=3), FIRST + timedelta(days=7)),
        (last, last),
        (FIRST - timedelta(days=400), FIRST - timedelta(days=1)),  # before the history
        (FIRST - timedelta(days=5), last + timedelta(days=5)),
    ]


async def _check(db_url: str, org_id: object) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        for start, end in _ranges():
            got = await org_coins.breakdown(aconn, org_id, start, end)  # type: ignore[arg-type]
            with psycopg.connect(db_url) as conn:
                params = {"org_id": org_id, "start": start, "end": end}
                want = conn.execute(EXPECTED, params).fetchall()
            assert [(r[0], r[2], *r[3:]) for r in got] == want, (start, end)


async def test_breakdowns_equal_the_wallet_coin_days_as_wallets_join_and_leave(
    db_url: str,
) -> None:
    rng = random.Random(20)
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        other = orgs.create_org(conn, "Other")
        # 37 wallets: bitmaps of several bytes, the last one partial.
        wallets, _ = orgs.track_wallets(conn, org.id, [address(n) for n in range(1, 38)])
        ids = [w.id for w in wallets]
        orgs.track_wallets(conn, other.id, [address(n) for n in range(30, 45)])
        _plant(
            conn, [w.id for w in orgs.upsert_wallets(conn, [address(n) for n in range(1, 45)])], rng
        )
        _roll_up_org(conn, org.id)
        _roll_up_org(conn, other.id)
        conn.commit()
    await _check(db_url, org.id)
    await _check(db_url, other.id)

    # Wallets leave (one of them the highest ordinal) and join; the days are rolled up
    # again, as jobs/tracking.py queues them.
    with psycopg.connect(db_url) as conn:
        for n in (2, 9, 37):
            assert orgs.untrack_wallet(conn, org.id, address(n)) is not None
        orgs.track_wallets(conn, org.id, [address(n) for n in (40, 2)])
        _roll_up_org(conn, org.id)
        conn.commit()
        ordinals = dict(
            conn.execute(
                "SELECT wallet_id, ordinal FROM org_wallets WHERE org_id = %s", (org.id,)
            ).fetchall()
        )
    assert len(set(ordinals.values())) == len(ordinals) == len(ids) - 3 + 2
    await _check(db_url, org.id)
    await _check(db_url, other.id)

    # A wallet's later days change: only the rebuilt org-days move, and still agree.
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE wallet_coin_day_metrics SET trade_count = 0 WHERE wallet_id = %s", (ids[4],)
        )
        _roll_up_org(conn, org.id)
        conn.commit()
        before = conn.execute(ROWS).fetchall()
        _roll_up_org(conn, org.id)  # a rebuild of rows that are right rewrites nothing
        assert conn.execute(ROWS).fetchall() == before
    await _check(db_url, org.id)


def test_concurrent_inserts_into_one_org_get_distinct_ordinals(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        org = orgs.create_org(conn, "Acme")
    barrier = threading.Barrier(4)

    def add(n: int) -> None:
        with psycopg.connect(db_url) as conn:
            barrier.wait()
            orgs.track_wallets(conn, org.id, [address(1000 * n + i) for i in range(50)])
            conn.commit()

    threads = [threading.Thread(target=add, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with psycopg.connect(db_url) as conn:
        ordinals = sorted(
            r[0]
            for r in conn.execute("SELECT ordinal FROM org_wallets WHERE org_id = %s", (org.id,))
        )
    assert ordinals == list(range(200))


async def test_migration_derives_the_rows_a_rebuild_writes(
    empty_db: str, migrate_before: MigrateBefore
) -> None:
    migrate_before(empty_db, "0020")
    rng = random.Random(3)
    with psycopg.connect(empty_db) as conn:
        org = orgs.create_org(conn, "Acme")
        other = orgs.create_org(conn, "Other")
        wallets = orgs.upsert_wallets(conn, [address(n) for n in range(1, 21)])
        links = [(org.id, w.id) for w in wallets[:15]] + [(other.id, w.id) for w in wallets[10:]]
        for org_id, wallet_id in links:
            conn.execute(
                "INSERT INTO org_wallets (org_id, wallet_id) VALUES (%s, %s)", (org_id, wallet_id)
            )
        _plant(conn, [w.id for w in wallets], rng)
        conn.commit()
    migrate(empty_db)
    with psycopg.connect(empty_db) as conn:
        migrated = conn.execute(ROWS).fetchall()
        assert migrated
        conn.execute("DELETE FROM org_coin_day_metrics")
        _roll_up_org(conn, org.id)
        _roll_up_org(conn, other.id)
        assert conn.execute(ROWS).fetchall() == migrated
        conn.rollback()
    for org_id in (org.id, other.id):
        await _check(empty_db, org_id)
