"""The read helpers the CLI's status and `sync --wait` use."""

from __future__ import annotations

import time

import dramatiq
import psycopg

from jobs.broker import PostgresBroker
from storage import jobs as store


def test_queue_depth_and_oldest_due_message(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    ingest = dramatiq.actor(lambda: None, broker=broker, actor_name="ingest", queue_name="ingest")
    rollup = dramatiq.actor(lambda: None, broker=broker, actor_name="rollup", queue_name="rollups")
    assert store.oldest_queued_age_s(conn) is None
    rollup.send_with_options(delay=60_000)
    # A delayed message is not waiting yet.
    assert store.oldest_queued_age_s(conn) is None
    ingest.send()
    ingest.send()
    time.sleep(0.2)
    age = store.oldest_queued_age_s(conn)
    assert age is not None and 0.2 <= age < 5
    assert [(d.queue, d.actor, d.state, d.count) for d in store.queue_depth(conn)] == [
        ("ingest", "ingest", "queued", 2),
        ("rollups", "rollup", "queued", 1),
    ]


def test_failed_jobs_filter_by_batch(broker: PostgresBroker, conn: psycopg.Connection) -> None:
    def fail(tag: str) -> None:
        raise RuntimeError(tag)

    actor = dramatiq.actor(fail, broker=broker, max_retries=0)
    actor.send_with_options(args=("mine",), batch="b1")
    actor.send_with_options(args=("other",), batch="b2")
    actor.send_with_options(args=("none",))
    consumer = broker.consume("default", prefetch=3, timeout=100)
    for _ in range(3):
        message = next(consumer)
        assert message is not None
        consumer.nack(message)
    consumer.close()
    assert [f.args for f in store.failed_jobs(conn, batch="b1")] == [["mine"]]
    assert sorted(f.args[0] for f in store.failed_jobs(conn)) == ["mine", "none", "other"]
    assert store.batch_progress(conn, "b2") == (0, 0, 0, 1)
