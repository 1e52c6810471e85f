"""`insert_many` (a node batch of many wallets): its straight COPY and its general path
store every fill once and count only the new ones, whichever path a batch takes."""

from __future__ import annotations

import threading
from datetime import date

import psycopg

from storage import fills, markets, orgs
from storage.fills import WalletInsert
from tests.factories import address, fill, ms
from tests.waiting import wait_until

T = ms(2026, 11, 2, 10)


def test_new_wallet_ranges_are_stored_and_counted_per_wallet_and_day(
    conn: psycopg.Connection,
) -> None:
    w1, w2 = (w.id for w in orgs.upsert_wallets(conn, [address(1), address(2)]))
    late = ms(2026, 11, 3, 1)
    # Out of key order on purpose: the result does not depend on it.
    batch = {w2: [fill(late, tid=3), fill(T, tid=2)], w1: [fill(T, tid=1)]}
    assert fills.insert_many(conn, batch) == {
        w1: WalletInsert({date(2026, 11, 2): 1}, T),
        w2: WalletInsert({date(2026, 11, 2): 1, date(2026, 11, 3): 1}, late),
    }
    assert (fills.count_fills(conn, w1), fills.count_fills(conn, w2)) == (1, 2)


def test_a_stored_fill_in_range_or_a_fill_twice_in_the_batch_is_stored_once(
    conn: psycopg.Connection,
) -> None:
    w1, w2 = (w.id for w in orgs.upsert_wallets(conn, [address(1), address(2)]))
    fills.insert_many(conn, {w1: [fill(T, tid=1)]})
    # w1 already has fill 1 (in range: the general path); w2's fill 5 comes twice.
    batch = {w1: [fill(T, tid=1), fill(T + 5, tid=2)], w2: [fill(T, tid=5), fill(T, tid=5)]}
    result = fills.insert_many(conn, batch)
    assert result == {
        w1: WalletInsert({date(2026, 11, 2): 1}, T + 5),
        w2: WalletInsert({date(2026, 11, 2): 1}, T),
    }
    assert (fills.count_fills(conn, w1), fills.count_fills(conn, w2)) == (2, 1)
    assert fills.insert_many(conn, batch) == {}
    # Nothing stored in range, but a fill twice: the straight COPY fails, the general
    # path stores it once.
    twice = fill(T + 100, tid=9)
    assert fills.insert_many(conn, {w2: [twice, twice]}) == {
        w2: WalletInsert({date(2026, 11, 2): 1}, T + 100)
    }


def test_a_fill_a_concurrent_writer_commits_meanwhile_undoes_the_copy_not_the_batch(
    db_url: str,
) -> None:
    with psycopg.connect(db_url, autocommit=True) as setup:
        (wallet,) = (w.id for w in orgs.upsert_wallets(setup, [address(7)]))
        markets.record(setup, ["BTC"])  # so that neither writer waits on the coin's row
    other = psycopg.connect(db_url)
    node = psycopg.connect(db_url)
    try:
        # The other writer (an API page) holds fill 2 uncommitted: invisible to the
        # node's range check, so the node takes the straight COPY and waits on its key.
        fills.insert_fills(other, wallet, [fill(T + 1, tid=2)])
        result: dict[int, WalletInsert] = {}
        pid = node.info.backend_pid
        thread = threading.Thread(
            target=lambda: result.update(
                fills.insert_many(node, {wallet: [fill(T, tid=1), fill(T + 1, tid=2)]})
            )
        )
        thread.start()

        def waiting() -> bool:
            row = other.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            return row is not None and row[0] == "Lock"

        wait_until(waiting, 30, "the node's COPY to wait on the other writer's key")
        other.commit()
        thread.join(30)
        node.commit()
        assert result == {wallet: WalletInsert({date(2026, 11, 2): 1}, T)}
        assert fills.count_fills(node, wallet) == 2
    finally:
        other.close()
        node.close()
