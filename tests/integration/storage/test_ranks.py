"""The standing ranks (storage/ranks.py) are derivable: after rollups (late fills on
days inside and before the spans), tracking and untracking, and new days, every row
equals the wallet's sums over the span summed from its wallet-days; `hl-analytics
rebuild` recomputes the same rows; a ranking read from them is the one the day totals
give, ties included; tracking waits for a rollup of the wallet in flight, and an
org-day rollup taking a pending wallet waits for the rollup listing it again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from hl_analytics.rebuild import rebuild
from hl_core.settings import Settings
from storage import dashboard, day_totals, orgs, ranks, read_models, rollups
from tests.factories import address, fill, ms
from tests.integration.pipeline.expected import store
from tests.integration.storage.test_running_totals import _fills, _roll_up

THROUGH = date(2026, 11, 10)

# Each (org, tracked wallet, span) with a trade in the span ending `through`: the sums of
# its wallet-days there (independent of the running totals the ranks are derived from).
EXPECTED = f"""
SELECT ow.wallet_id, ow.org_id, s.span, a.address,
       {", ".join(f"sum(m.{c})" for c in read_models.SUMMED)},
       count(*) FILTER (WHERE m.trade_count > 0)
FROM org_wallets ow
JOIN wallets a ON a.id = ow.wallet_id
JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id
CROSS JOIN unnest(%(spans)s::int[]) AS s(span)
WHERE m.day > %(through)s::date - s.span AND m.day <= %(through)s
GROUP BY 1, 2, 3, 4 HAVING sum(m.trade_count) > 0
ORDER BY 1, 2, 3
"""
ROWS = f"""
SELECT wallet_id, org_id, span, address, {", ".join(ranks.COLUMNS)}
FROM org_wallet_ranks ORDER BY 1, 2, 3
"""


def _check(conn: psycopg.Connection, through: date) -> list[tuple]:
    rows = conn.execute(ROWS).fetchall()
    expected = conn.execute(EXPECTED, {"through": through, "spans": list(ranks.SPANS)})
    assert rows == expected.fetchall()
    assert conn.execute(ranks.SELECT_THROUGH).fetchone() == (through,)
    return rows


def test_rows_follow_rollups_tracking_and_new_days(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        a = orgs.create_org(conn, "Acme")
        b = orgs.create_org(conn, "Beta")
        ids = {
            w.address: w.id for w in orgs.upsert_wallets(conn, [address(n) for n in range(1, 6)])
        }
        w = [ids[address(n)] for n in range(1, 6)]
        orgs.track_wallets(conn, a.id, [address(n) for n in (1, 2, 3, 4)])
        orgs.track_wallets(conn, b.id, [address(n) for n in (3, 4, 5)])
        conn.commit()
        # Built empty by the scheduler's first tick; nothing to build on a second one.
        assert ranks.shift(conn, THROUGH) == 0
        assert ranks.shift(conn, THROUGH) == 0
        conn.commit()
        # Days inside each span, on their edges and before them all.
        for back in (0, 3, 6, 7, 29, 30, 89, 90, 200):
            day = THROUGH - timedelta(days=back)
            for n, wallet_id in enumerate(w):
                if (back + n) % 3:
                    store(conn, wallet_id, _fills(wallet_id, day, 1 + n))
                    _roll_up(conn, wallet_id, day)
        _check(conn, THROUGH)
        # Late fills: inside the spans, and before them (no span's total changes).
        for wallet_id, back in ((w[0], 5), (w[2], 60), (w[4], 150)):
            store(conn, wallet_id, _fills(wallet_id + 11, THROUGH - timedelta(days=back), 2))
            _roll_up(conn, wallet_id, THROUGH - timedelta(days=back))
        _check(conn, THROUGH)
        # Beta starts tracking a wallet with history; Acme stops tracking one.
        orgs.track_wallets(conn, b.id, [address(1)])
        assert orgs.untrack_wallet(conn, a.id, address(3)) is not None
        conn.commit()
        incremental = _check(conn, THROUGH)
        assert {(r[1], r[0]) for r in incremental} >= {(b.id, w[0])}
        assert (a.id, w[2]) not in {(r[1], r[0]) for r in incremental}
        # New days: the spans slide (days leave them), then today's fills arrive.
        for days in (1, 7, 24):
            later = THROUGH + timedelta(days=days)
            ranks.shift(conn, later)  # (rows may only go: not counted)
            conn.commit()
            _check(conn, later)
        store(conn, w[1], _fills(w[1], later, 3))
        _roll_up(conn, w[1], later)
        incremental = _check(conn, later)

    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM org_wallet_ranks")
        conn.commit()
    rebuild(Settings.from_env({"DATABASE_URL": db_url}), None, None, None)
    with psycopg.connect(db_url) as conn:
        assert _check(conn, later) == incremental
        # A refresh of rows that are right rewrites none of them.
        assert ranks.refresh(conn, None, later, one_day=False) == 0


def test_a_ranking_over_a_kept_span_is_the_day_totals_one(db_url: str) -> None:
    """Every ordering over 7, 30 and 90 days, cut inside groups of equal keys (broken by
    the address), from the ranks and from the day totals: the same rows."""
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        wallets, _ = orgs.track_wallets(conn, org.id, [address(n) for n in range(1, 10)])
        for n, wallet in enumerate(wallets):
            for back in (0, 10, 50):
                day = THROUGH - timedelta(days=back)
                # Three wallets alike in volume only, three alike in every sum (and all
                # alike in funding: none).
                size = Decimal(1 if n < 3 else 4 if n < 6 else n)
                pnl = Decimal(n % 3 - 1 if n < 3 else 0)
                start = ms(day.year, day.month, day.day, 2)
                batch = [
                    fill(start + k, tid=wallet.id * 1000 + back * 10 + k, sz=size, closed_pnl=pnl)
                    for k in range(2)
                ]
                store(conn, wallet.id, batch)
                _roll_up(conn, wallet.id, day)
        day_totals.extend_day_totals(conn, THROUGH)
        ranks.shift(conn, THROUGH)
        conn.commit()
    with psycopg.connect(db_url) as conn:
        for span in ranks.SPANS:
            start = THROUGH - timedelta(days=span - 1)
            params = {"org_id": org.id, "start": start, "end": THROUGH}
            for order in dashboard.ORDERS:
                for limit in (2, 4, 20):
                    kept = dashboard.top_wallets_sql(order, start, THROUGH, THROUGH, THROUGH)
                    dense = dashboard.top_wallets_sql(order, start, THROUGH, THROUGH, None)
                    assert "org_wallet_ranks" in kept and "org_wallet_ranks" not in dense
                    got = conn.execute(kept, {**params, "limit": limit}).fetchall()
                    want = conn.execute(dense, {**params, "limit": limit}).fetchall()
                    assert got == want, (span, order, limit)
                    assert len(got) == min(limit, 9)
        # A range that is not a kept span, or ends elsewhere, is not read from them.
        for start, end in ((THROUGH - timedelta(days=7), THROUGH), (THROUGH, THROUGH)):
            assert "org_wallet_ranks" not in dashboard.top_wallets_sql(
                "VOLUME", start, end, THROUGH, THROUGH
            )
        yesterday = THROUGH - timedelta(days=1)
        assert "org_wallet_ranks" not in dashboard.top_wallets_sql(
            "VOLUME", yesterday - timedelta(days=6), yesterday, THROUGH, THROUGH
        )


def _blocked(conn: psycopg.Connection, pid: int) -> bool:
    row = conn.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return row is not None and row[0] == "Lock"


def _waits_for(
    db_url: str, holder: psycopg.Connection, waiter: psycopg.Connection, work: Callable[[], None]
) -> None:
    """Runs `work` (then commits) on `waiter` in a thread, checks that it waits for a lock
    while `holder`'s transaction is open, commits `holder`, and checks `work` then ends
    without an error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
            waiter.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    with psycopg.connect(db_url, autocommit=True) as watch:
        deadline = time.monotonic() + 30
        while not _blocked(watch, waiter.info.backend_pid):
            assert thread.is_alive() and time.monotonic() < deadline, errors
            time.sleep(0.01)
    holder.commit()
    thread.join(30)
    assert not thread.is_alive() and errors == []


@pytest.mark.parametrize("change", ["track", "untrack"])
def test_tracking_waits_for_a_rollup_of_the_wallet_in_flight(db_url: str, change: str) -> None:
    """A rollup computes the ranks of the orgs tracking its wallets as of its statement;
    a tracking change committed meanwhile must neither leave the new org's rows stale
    nor make the rollup insert rows of a pair just untracked."""
    with psycopg.connect(db_url) as conn:
        a = orgs.create_org(conn, "Acme")
        b = orgs.create_org(conn, "Beta")
        (wallet,), _ = orgs.track_wallets(conn, a.id, [address(1)])
        if change == "untrack":
            orgs.track_wallets(conn, b.id, [address(1)])
        store(conn, wallet.id, _fills(wallet.id, THROUGH, 2))
        _roll_up(conn, wallet.id, THROUGH)
        ranks.shift(conn, THROUGH)
        conn.commit()
    with psycopg.connect(db_url) as rollup, psycopg.connect(db_url) as other:
        # The rollup of new fills, in flight (its transaction open).
        store(rollup, wallet.id, _fills(wallet.id + 5, THROUGH, 3))
        rollups.rebuild_wallet_days(rollup, [wallet.id], THROUGH)

        def tracking() -> None:
            if change == "track":
                orgs.track_wallets(other, b.id, [address(1)])
            else:
                orgs.untrack_wallet(other, b.id, address(1))

        _waits_for(db_url, rollup, other, tracking)
    with psycopg.connect(db_url) as conn:
        # The rollup's own org is brought up to date by its org-day rollup; the other's
        # rows are what the tracking change wrote.
        rollups.rebuild_org_day(conn, a.id, THROUGH)
        conn.commit()
        rows = _check(conn, THROUGH)
    expected_orgs = {a.id, b.id} if change == "track" else {a.id}
    assert {r[1] for r in rows} == expected_orgs


def test_an_org_day_rollup_waits_for_a_rollup_listing_its_pending_wallet(db_url: str) -> None:
    """A wallet pending since an earlier rollup is listed again by a rollup in flight:
    the org-day rollup taking it must read that rollup's totals, not leave them behind
    with nothing pending."""
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        (wallet,), _ = orgs.track_wallets(conn, org.id, [address(1)])
        ranks.shift(conn, THROUGH)
        store(conn, wallet.id, _fills(wallet.id, THROUGH, 2))
        rollups.rebuild_wallet_days(conn, [wallet.id], THROUGH)
        conn.commit()
        assert conn.execute("SELECT count(*) FROM org_wallet_ranks_pending").fetchone() == (1,)
    with psycopg.connect(db_url) as rollup, psycopg.connect(db_url) as org_day:
        store(rollup, wallet.id, _fills(wallet.id + 5, THROUGH, 3))
        rollups.rebuild_wallet_days(rollup, [wallet.id], THROUGH)
        _waits_for(
            db_url, rollup, org_day, lambda: rollups.rebuild_org_day(org_day, org.id, THROUGH)
        )
    with psycopg.connect(db_url) as conn:
        _check(conn, THROUGH)
        assert conn.execute("SELECT count(*) FROM org_wallet_ranks_pending").fetchone() == (0,)
