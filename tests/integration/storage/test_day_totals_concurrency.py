"""The day totals (storage/day_totals.py) stay derivable while everything that writes them
runs at once: rollups of today and of old days (late fills) on several connections,
the scheduler's extension to new days and its freshening of stale wallets. Once all of
them are done and the stale wallets freshened, every wallet has a row on each day
through `through`, each its last running total on or before that day, and a rebuild
changes nothing."""

from __future__ import annotations

import random
import threading
from datetime import date, timedelta
from decimal import Decimal

import psycopg

from storage import day_totals, orgs, rollups
from tests.factories import address, fill, ms
from tests.integration.pipeline.expected import store
from tests.integration.storage.test_running_totals import DAY_TOTALS, TOTALS, held_day_totals

FIRST = date(2026, 9, 1)
DAYS = 30
WALLETS = 12
ROLLUPS_PER_THREAD = 25


def _roll_up(db_url: str, wallet_id: int, day: date, tid: int) -> None:
    """One late (or today's) fill of the wallet on the day, stored and rolled up."""
    with psycopg.connect(db_url) as conn:
        start = ms(day.year, day.month, day.day, 2)
        store(conn, wallet_id, [fill(start + tid, tid=tid, px=Decimal(100 + tid % 7))])
        rollups.rebuild_wallet_days(conn, [wallet_id], day)
        conn.commit()


def test_rollups_extension_and_freshening_at_once_leave_derivable_day_totals(
    db_url: str,
) -> None:
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        wallets, _ = orgs.track_wallets(conn, org.id, [address(n) for n in range(WALLETS)])
        # Kept through the middle of the days at first; the extender moves it on.
        day_totals.extend_day_totals(conn, FIRST + timedelta(days=DAYS // 2))
        conn.commit()
    ids = [w.id for w in wallets]
    done = threading.Event()
    errors: list[BaseException] = []

    def rollups_thread(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for n in range(ROLLUPS_PER_THREAD):
                day = FIRST + timedelta(days=rng.randrange(DAYS))
                _roll_up(db_url, rng.choice(ids), day, tid=seed * 1_000 + n)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    def scheduler_thread() -> None:
        through = FIRST + timedelta(days=DAYS // 2)
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                while not done.is_set():
                    if through < FIRST + timedelta(days=DAYS - 1):
                        through += timedelta(days=1)
                    with conn.transaction():
                        day_totals.extend_day_totals(conn, through)
                    with conn.transaction():
                        day_totals.freshen_day_totals(conn, limit=3)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=rollups_thread, args=(s,)) for s in (1, 2, 3)]
    scheduler = threading.Thread(target=scheduler_thread)
    for thread in (*writers, scheduler):
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    done.set()
    scheduler.join(timeout=300)
    assert not errors, errors
    assert not any(t.is_alive() for t in (*writers, scheduler))

    last = FIRST + timedelta(days=DAYS - 1)
    with psycopg.connect(db_url) as conn:
        day_totals.extend_day_totals(conn, last)
        while day_totals.freshen_day_totals(conn):
            pass
        conn.commit()
        running = conn.execute(TOTALS).fetchall()
        held = conn.execute(DAY_TOTALS).fetchall()
        assert conn.execute(day_totals.SELECT_THROUGH).fetchone() == (last,)
        # A rebuild of every wallet from the first day rewrites nothing.
        assert day_totals.refresh_read_models(conn, None, FIRST) == 0
    assert len(running) > WALLETS
    assert held == held_day_totals(running, last)
