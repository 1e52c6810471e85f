"""Fair keys: a queue's messages are claimed round robin between their keys (orgs),
oldest first within each, and a de-duplicated send that adds a batch moves the
message to its sender's key; leases and de-duplication are as for any message."""

from __future__ import annotations

import dramatiq
import psycopg

from jobs.broker import PostgresBroker
from storage import jobs as store

OWNER = "test-consumer"


def claimed_keys(conn: psycopg.Connection, limit: int) -> list[str]:
    claimed = store.claim_jobs(conn, "default", OWNER, limit, 60)
    return [c.message["args"][0] for c in claimed]


def test_a_small_key_is_not_behind_a_large_one(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    ingest = dramatiq.actor(lambda who: None, broker=broker, actor_name="ingest")
    for i in range(200):  # a large org's backfill, queued first
        ingest.send_with_options(args=("big",), dedup_key=f"big:{i}", fair_key="org-big")
    for i in range(3):
        ingest.send_with_options(args=("small",), dedup_key=f"small:{i}", fair_key="org-small")
    ingest.send_with_options(args=("nobody",))  # no key: a turn of its own
    first = claimed_keys(conn, 3)
    assert sorted(first) == ["big", "nobody", "small"]
    # Turn by turn: the small org's three go within the first few claims, not after 200.
    later = [key for _ in range(3) for key in claimed_keys(conn, 2)]
    assert later.count("small") == 2
    remaining = conn.execute(
        "SELECT count(*) FROM jobs WHERE state = 'queued' AND fair_key = 'org-small'"
    ).fetchone()
    assert remaining == (0,)


def test_a_merged_send_with_a_batch_moves_the_message_to_its_key(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    ingest = dramatiq.actor(lambda who: None, broker=broker, actor_name="ingest")
    for i in range(50):
        ingest.send_with_options(args=(f"w{i}",), dedup_key=f"w{i}", fair_key="org-big")
    # The small org syncs a wallet the large org's backfill already queued: one message,
    # now the small org's (whoever waits on it), and still one row with both keys' work.
    ingest.send_with_options(args=("w49",), dedup_key="w49", fair_key="org-small", batch="s")
    rows = conn.execute(
        "SELECT fair_key, batches FROM jobs WHERE dedup_key = 'w49' AND state = 'queued'"
    ).fetchall()
    assert rows == [("org-small", ["s"])]
    assert "w49" in claimed_keys(conn, 2)
    # A send without a batch (the scheduler's) leaves the key as it is.
    ingest.send_with_options(args=("w48",), dedup_key="w48", fair_key="org-other")
    key = conn.execute("SELECT fair_key FROM jobs WHERE dedup_key = 'w48'").fetchone()
    assert key == ("org-big",)
