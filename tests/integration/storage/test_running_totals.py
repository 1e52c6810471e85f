"""The running totals (storage/read_models.py) are derivable: the rollups' increments, late
fills on old days included, leave the same rows as `hl-analytics rebuild` recomputes, and
every range total read from them equals the sum of the wallet-days."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import psycopg

from hl_analytics.rebuild import rebuild
from hl_core.settings import Settings
from storage import dashboard, day_totals, orgs, read_models, rollups
from tests.factories import address, fill, ms
from tests.integration.pipeline.expected import store

_COLUMNS = ", ".join(read_models.COLUMNS)
TOTALS = f"SELECT wallet_id, day, {_COLUMNS} FROM wallet_running_totals ORDER BY wallet_id, day"
STALE = "SELECT count(*) FROM wallet_day_totals_stale"
DAY_TOTALS = f"SELECT wallet_id, day, {_COLUMNS} FROM wallet_day_totals ORDER BY wallet_id, day"
COIN_TOTALS = "SELECT * FROM wallet_coin_running_totals ORDER BY wallet_id, coin, day"
PAIRS = "SELECT * FROM wallet_coins ORDER BY wallet_id, coin"
ORG_COINS = "SELECT * FROM org_coin_day_metrics ORDER BY org_id, day, coin"
FIRST = date(2026, 10, 1)


def _fills(wallet: int, day: date, n: int) -> list:
    start = ms(day.year, day.month, day.day, 1)
    return [
        fill(
            start + 1000 * i,
            tid=wallet * 1_000_000 + day.toordinal() % 10_000 * 10 + i,
            coin=("BTC", "@107")[i % 2],
            px=Decimal("100.25") + wallet,
            sz=Decimal("0.5") * (i + 1),
            closed_pnl=Decimal(i - 1) / 3,
            dir=("Open Long", "Buy")[i % 2],
        )
        for i in range(n)
    ]


def _roll_up(conn: psycopg.Connection, wallet_id: int, day: date) -> None:
    """What an ingest page and its rollup job do for one wallet-day, in their order."""
    rollups.add_pending(conn, wallet_id, [day])
    done = rollups.rollup_pending_chunk(conn, day)
    for org_id in done.org_ids:
        rollups.rebuild_org_day(conn, org_id, day)
    conn.commit()


def test_increments_with_late_fills_equal_a_rebuild(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        wallets, _ = orgs.track_wallets(conn, org.id, [address(n) for n in (1, 2, 3)])
        conn.commit()
        ids = [w.id for w in wallets]
        # The day totals are kept through day 20 while the days arrive (the rollups keep
        # them up to there), then extended past the last one.
        assert day_totals.extend_day_totals(conn, FIRST + timedelta(days=20)) == 0
        conn.commit()
        # Days arrive in order, one wallet skipping some of them ...
        for offset in range(0, 40, 3):
            day = FIRST + timedelta(days=offset)
            for n, wallet_id in enumerate(ids):
                if (offset + n) % 4 != 0:
                    store(conn, wallet_id, _fills(wallet_id, day, 1 + n))
                    _roll_up(conn, wallet_id, day)
        # ... then late fills: on an old day with a row (changing every later total),
        # on an old day without one (a new row in the middle), and today's again.
        late = [(ids[0], FIRST + timedelta(days=3)), (ids[1], FIRST + timedelta(days=1))]
        late.append((ids[2], FIRST + timedelta(days=39)))
        for wallet_id, day in late:
            store(conn, wallet_id, _fills(wallet_id + 7, day, 2))
            _roll_up(conn, wallet_id, day)
        assert day_totals.extend_day_totals(conn, THROUGH) > 0
        conn.commit()
        # Rollups of days before day 20 left their wallets' day totals stale; the
        # scheduler's tick brings them up to date.
        assert conn.execute(STALE).fetchone() == (len(ids),)
        assert day_totals.freshen_day_totals(conn, limit=2) == 2
        assert day_totals.freshen_day_totals(conn) == len(ids) - 2
        assert day_totals.freshen_day_totals(conn) == 0
        conn.commit()
        queries = (TOTALS, COIN_TOTALS, PAIRS, DAY_TOTALS, ORG_COINS)
        incremental = [conn.execute(q).fetchall() for q in queries]
        days = conn.execute("SELECT count(*) FROM wallet_day_metrics").fetchone()
        coin_days = conn.execute("SELECT count(*) FROM wallet_coin_day_metrics").fetchone()
    assert days is not None and len(incremental[0]) == days[0] > 20
    assert coin_days is not None and len(incremental[1]) == coin_days[0] > days[0]
    # A row per wallet on every day from its first through THROUGH, each its last
    # running total on or before that day.
    assert incremental[3] == held_day_totals(incremental[0], THROUGH)

    with psycopg.connect(db_url) as conn:  # nothing left behind by the increments
        conn.execute("DELETE FROM wallet_running_totals")
        conn.execute("DELETE FROM wallet_coin_running_totals")
        conn.execute("DELETE FROM wallet_coins")
        conn.execute("DELETE FROM wallet_day_totals")
        conn.execute("DELETE FROM org_coin_day_metrics")
        conn.commit()
    rebuild(Settings.from_env({"DATABASE_URL": db_url}), None, None, None)
    with psycopg.connect(db_url) as conn:
        assert [conn.execute(q).fetchall() for q in queries] == incremental
        # A refresh of rows that are right rewrites none of them.
        assert day_totals.refresh_read_models(conn, None, FIRST) == 0
        assert conn.execute(STALE).fetchone() == (0,)


THROUGH = FIRST + timedelta(days=45)


def held_day_totals(running: list[tuple], through: date) -> list[tuple]:
    """The day totals the running totals' rows (TOTALS, in its order) derive: per wallet,
    a row on every day from its first through `through`, its last running total on or
    before that day (DAY_TOTALS's rows, in its order)."""
    by_wallet: dict[int, list[tuple]] = {}
    for row in running:
        by_wallet.setdefault(row[0], []).append(row)
    held = []
    for wallet_id, rows in by_wallet.items():
        day = rows[0][1]
        while day <= through:
            latest = [r for r in rows if r[1] <= day][-1]
            held.append((wallet_id, day, *latest[2:]))
            day += timedelta(days=1)
    return held


# Every range's totals per wallet, summed from the wallet-days: what the read model replaces.
SUMS = f"""
SELECT m.wallet_id, {", ".join(f"sum(m.{c})" for c in read_models.SUMMED)},
       count(*) FILTER (WHERE m.trade_count > 0)
FROM wallet_day_metrics m WHERE m.day BETWEEN %(start)s AND %(end)s
GROUP BY m.wallet_id HAVING sum(m.trade_count) > 0 ORDER BY m.wallet_id
"""


COIN_SUMS = """
SELECT coin, market, sum(trade_count), sum(volume_usd), sum(fees_usd), sum(realized_pnl_usd),
       count(DISTINCT wallet_id) FILTER (WHERE trade_count > 0)
FROM wallet_coin_day_metrics
WHERE day BETWEEN %(start)s AND %(end)s
  AND (%(wallet)s::bigint IS NULL OR wallet_id = %(wallet)s::bigint)
GROUP BY coin, market ORDER BY sum(volume_usd) DESC, coin
"""


async def test_range_totals_equal_the_sums_of_the_days(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        wallets, _ = orgs.track_wallets(conn, org.id, [address(n) for n in (1, 2)])
        for offset in range(0, 60, 2):
            day = FIRST + timedelta(days=offset)
            for w in wallets:
                if (offset // 2 + w.id) % 3:
                    store(conn, w.id, _fills(w.id, day, 2))
                    rollups.rebuild_wallet_days(conn, [w.id], day)
            rollups.rebuild_org_day(conn, org.id, day)
        conn.commit()
    ranges = [(FIRST, FIRST + timedelta(days=59))]  # the running totals
    ranges += [(FIRST + timedelta(days=9), FIRST + timedelta(days=44))]  # cut inside
    ranges += [(FIRST + timedelta(days=3), FIRST + timedelta(days=8))]  # short: the days
    ranges += [(FIRST - timedelta(days=400), FIRST - timedelta(days=40))]  # before history
    # Read from the running totals, then from the day totals once they are built.
    await _check_ranges(db_url, org.id, wallets, ranges)
    with psycopg.connect(db_url) as conn:
        assert day_totals.extend_day_totals(conn, FIRST + timedelta(days=59)) > 0
    await _check_ranges(db_url, org.id, wallets, ranges)
    # A late fill on an old day: the wallet's day totals are stale from that day, and its
    # range totals come from its running totals until they are freshened.
    with psycopg.connect(db_url) as conn:
        late = FIRST + timedelta(days=20)
        store(conn, wallets[0].id, _fills(wallets[0].id + 7, late, 3))
        rollups.rebuild_wallet_days(conn, [wallets[0].id], late)
        rollups.rebuild_org_day(conn, org.id, late)
        conn.commit()
        assert conn.execute(STALE).fetchone() == (1,)
    await _check_ranges(db_url, org.id, wallets, ranges)
    with psycopg.connect(db_url) as conn:
        assert day_totals.freshen_day_totals(conn) == 1
    await _check_ranges(db_url, org.id, wallets, ranges)


async def _check_ranges(db_url: str, org_id: object, wallets: list, ranges: list) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        for start, end in ranges:
            ranked = await dashboard.top_wallets(aconn, org_id, start, end, 10, "VOLUME")
            with psycopg.connect(db_url) as conn:
                sums = conn.execute(SUMS, {"start": start, "end": end}).fetchall()
            by_address = {w.address: w.id for w in wallets}
            got = sorted(
                (
                    by_address[r.address],
                    r.trade_count,
                    r.spot_volume_usd,
                    r.perp_volume_usd,
                    r.outcome_volume_usd,
                    r.total_volume_usd,
                    r.fees_usd,
                    r.realized_pnl_usd,
                    r.funding_usd,
                    r.deposits_usd,
                    r.withdrawals_usd,
                    r.active_days,
                )
                for r in ranked
            )
            # The sums' unpriced_fills column (row[8]) is not part of a ranking row.
            assert got == [(*row[:8], *row[9:]) for row in sums], (start, end)
            for wallet in (None, wallets[0]):
                coins = await dashboard.coin_breakdown(
                    aconn, org_id, start, end, wallet and wallet.address
                )
                with psycopg.connect(db_url) as conn:
                    params = {"start": start, "end": end, "wallet": wallet and wallet.id}
                    coin_sums = conn.execute(COIN_SUMS, params).fetchall()
                assert [
                    (c.coin, c.market, c.trade_count, c.volume_usd, c.fees_usd,
                     c.realized_pnl_usd, c.wallets)
                    for c in coins
                ] == coin_sums, (start, end, wallet)  # fmt: skip
        assert not sums and not coin_sums  # the last range, before any history: nothing
