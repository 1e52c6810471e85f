"""storage.fills.insert_fills' fast path (COPY straight into the table) and its fallback."""

from __future__ import annotations

import threading
import time
from datetime import date

import psycopg

from storage import fills, orgs
from tests.factories import address, fill, ms


def test_new_batch_is_copied_straight_in_once(conn: psycopg.Connection) -> None:
    wallet = orgs.upsert_wallets(conn, [address(1)])[0].id
    t = ms(2026, 11, 2, 23, 59)
    batch = [fill(t, tid=1), fill(t, tid=1), fill(t, tid=2, oid=2), fill(t + 60_000, tid=3)]
    result = fills.insert_fills(conn, wallet, batch)
    assert result.new_per_day == {date(2026, 11, 2): 2, date(2026, 11, 3): 1}
    assert fills.count_fills(conn, wallet) == 3
    # The same range again holds stored fills: the general path, which stores nothing twice.
    assert fills.insert_fills(conn, wallet, batch).inserted == 0
    assert fills.count_fills(conn, wallet) == 3


def test_a_fill_stored_meanwhile_by_another_transaction_falls_back(db_url: str) -> None:
    t = ms(2026, 11, 2, 12)
    batch = [fill(t, tid=1), fill(t + 1, tid=2), fill(t + 2, tid=3)]
    with psycopg.connect(db_url) as other, psycopg.connect(db_url) as conn:
        wallet = orgs.upsert_wallets(other, [address(1)])[0].id
        other.commit()
        fills.insert_fills(other, wallet, batch[1:2])  # not committed yet: invisible to conn
        results: list[fills.InsertResult] = []
        writer = threading.Thread(
            target=lambda: results.append(fills.insert_fills(conn, wallet, batch))
        )
        writer.start()
        time.sleep(0.5)  # conn's COPY now waits for `other` on the conflicting row
        other.commit()
        writer.join(timeout=10)
        conn.commit()
        assert [r.inserted for r in results] == [2]
        assert fills.count_fills(conn, wallet) == 3
