"""De-duplication keys: one queued (or running) message per key, batches merged into it."""

from __future__ import annotations

import threading
import time

import dramatiq
import psycopg
from dramatiq.broker import MessageProxy

from jobs.broker import PostgresBroker
from storage import jobs as store
from tests.integration.broker.support import make_broker, waits_on_a_lock
from tests.waiting import wait_until


def _rows(conn: psycopg.Connection) -> list[tuple[str, list[str]]]:
    return [
        (r[0], sorted(r[1]))
        for r in conn.execute(
            "SELECT state, batches FROM jobs WHERE dedup_key IS NOT NULL ORDER BY id"
        )
    ]


def test_key_is_deduplicated_while_queued_only(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    rollup = dramatiq.actor(lambda day: None, broker=broker, actor_name="rollup")
    for _ in range(3):
        rollup.send_with_options(args=("2026-01-01",), dedup_key="rollup:1")
    assert _rows(conn) == [("queued", [])]
    consumer = broker.consume("default", prefetch=1, timeout=100)
    running = next(consumer)
    assert running is not None
    # Running does not hold the key: the next send queues a fresh message.
    rollup.send_with_options(args=("2026-01-01",), dedup_key="rollup:1")
    rollup.send_with_options(args=("2026-01-01",), dedup_key="rollup:1")
    assert _rows(conn) == [("running", []), ("queued", [])]
    consumer.ack(running)
    consumer.close()
    assert _rows(conn) == [("done", []), ("queued", [])]


def test_key_is_deduplicated_while_running_when_asked(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    ingest = dramatiq.actor(lambda address: None, broker=broker, actor_name="ingest")

    def send(batch: str) -> None:
        ingest.send_with_options(
            args=("0xabc",), dedup_key="ingest:0xabc", dedup_running=True, batch=batch
        )

    send("b1")
    consumer = broker.consume("default", prefetch=1, timeout=100)
    running = next(consumer)
    assert running is not None
    send("b2")
    # Absorbed by the running message, which now also counts for batch b2.
    assert _rows(conn) == [("running", ["b1", "b2"])]
    assert store.batch_progress(conn, "b2") == (0, 1, 0, 0)
    consumer.ack(running)
    assert store.batch_progress(conn, "b2") == (0, 0, 1, 0)
    send("b3")
    assert _rows(conn) == [("done", ["b1", "b2"]), ("queued", ["b3"])]
    consumer.close()


def test_deduplicated_send_adds_its_batch_to_the_queued_message(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    rollup = dramatiq.actor(lambda: None, broker=broker, actor_name="rollup")
    rollup.send_with_options(dedup_key="k", batch="b1")
    rollup.send_with_options(dedup_key="k", batch="b2")
    rollup.send_with_options(dedup_key="k", batch="b2")
    rollup.send_with_options(dedup_key="k")
    assert _rows(conn) == [("queued", ["b1", "b2"])]
    assert store.batch_progress(conn, "b1") == store.batch_progress(conn, "b2") == (1, 0, 0, 0)


def test_concurrent_senders_queue_one_message(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    rollup = dramatiq.actor(lambda: None, broker=broker, actor_name="rollup")
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            start.wait()
            for _ in range(10):
                rollup.send_with_options(dedup_key="org-day", batch=f"b{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _rows(conn) == [("queued", sorted(f"b{i}" for i in range(8)))]


def test_transactional_sends_deduplicate_against_each_other(
    broker: PostgresBroker, db_url: str, conn: psycopg.Connection
) -> None:
    rollup = dramatiq.actor(lambda: None, broker=broker, actor_name="rollup")
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        with broker.transaction(first):
            rollup.send_with_options(dedup_key="k", batch="first")
        done = threading.Event()

        def send_second() -> None:
            with broker.transaction(second):
                rollup.send_with_options(dedup_key="k", batch="second")
            second.commit()
            done.set()

        thread = threading.Thread(target=send_second)
        thread.start()
        # The second send waits on the first's uncommitted key instead of racing it.
        wait_until(
            lambda: waits_on_a_lock(db_url, second.info.backend_pid),
            what="the second send to wait for the first's lock",
        )
        assert not done.is_set()
        first.commit()
        thread.join(30)
    assert done.is_set()
    assert _rows(conn) == [("queued", ["first", "second"])]


def test_retry_merges_into_a_queued_holder_of_its_key(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    rollup = dramatiq.actor(lambda: None, broker=broker, actor_name="rollup")
    rollup.send_with_options(dedup_key="k", batch="b1")
    consumer = broker.consume("default", prefetch=1, timeout=100)
    running = next(consumer)
    assert running is not None
    rollup.send_with_options(dedup_key="k", batch="b2")
    # Released (as on shutdown) while another message holds the key: the holder
    # takes over its batches, and it ends without a second queued copy.
    consumer.requeue([running])
    consumer.close()
    assert _rows(conn) == [("done", ["b1"]), ("queued", ["b1", "b2"])]


def test_requeue_merges_into_a_running_holder_that_keeps_its_key(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    ingest = dramatiq.actor(lambda: None, broker=broker, actor_name="ingest")
    ingest.send_with_options(dedup_key="k", batch="b1")
    consumer = broker.consume("default", prefetch=2, timeout=100)
    first = next(consumer)
    ingest.send_with_options(dedup_key="k", dedup_running=True, batch="b2")
    second = next(consumer)
    assert first is not None and second is not None
    # The second holds the key while it runs, so the first cannot be queued again.
    consumer.requeue([first])
    assert _rows(conn) == [("done", ["b1"]), ("running", ["b1", "b2"])]
    consumer.ack(second)
    consumer.close()
    assert store.batch_progress(conn, "b1") == (0, 0, 2, 0)


def test_a_consumer_blocked_by_a_senders_open_transaction_wakes_at_its_commit(
    db_url: str,
) -> None:
    broker = make_broker(db_url, poll_s=5.0)
    try:
        rollup = dramatiq.actor(lambda: None, broker=broker, actor_name="rollup")
        rollup.send_with_options(dedup_key="k")
        got: list[tuple[MessageProxy, float]] = []
        with psycopg.connect(db_url) as sender:
            # The merge (a no-op: nothing new to add) still locks the queued message
            # until the sender commits.
            with broker.transaction(sender):
                rollup.send_with_options(dedup_key="k")
            consumer = broker.consume("default", prefetch=1, timeout=5000)

            def receive() -> None:
                while (message := next(consumer)) is None:
                    pass
                got.append((message, time.monotonic()))

            thread = threading.Thread(target=receive)
            thread.start()
            time.sleep(0.5)
            assert got == []
            committed = time.monotonic()
            sender.commit()
            thread.join(30)
        [(message, received)] = got
        # Woken by the commit's NOTIFY, before the 5 s poll (with slack for a loaded machine).
        assert received - committed < 4.0
        consumer.ack(message)
        consumer.close()
    finally:
        broker.close()
