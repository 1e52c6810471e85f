"""Sending, delivering and finishing messages, with Dramatiq's own middleware on top."""

from __future__ import annotations

import itertools
import threading
import time

import dramatiq
import psycopg
import pytest
from dramatiq.middleware.time_limit import TimeLimitExceeded

from jobs.broker import DedupOptionsInvalid, PostgresBroker
from storage import jobs as store
from tests.integration.broker.support import Calls, running_worker
from tests.waiting import wait_until


def _states(conn: psycopg.Connection) -> dict[str, int]:
    return {d.state: d.count for d in store.queue_depth(conn)}


def test_messages_are_consumed_once_and_acked(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    calls = Calls()
    echo = dramatiq.actor(calls.add, broker=broker, actor_name="echo")
    for i in range(30):
        echo.send(i)
    assert _states(conn) == {"queued": 30}
    with running_worker(broker, threads=4):
        broker.join("default", timeout=10_000)
    assert sorted(calls.values()) == list(range(30))  # type: ignore[type-var]
    assert _states(conn) == {"done": 30}
    attempts = conn.execute("SELECT DISTINCT attempts FROM jobs").fetchall()
    assert attempts == [(1,)]


def test_delayed_message_waits_for_its_run_at(broker: PostgresBroker) -> None:
    calls = Calls()
    echo = dramatiq.actor(calls.add, broker=broker, actor_name="echo")
    with running_worker(broker):
        sent = time.monotonic()
        echo.send_with_options(args=("later",), delay=1200)
        echo.send("now")
        wait_until(lambda: len(calls.values()) == 2, what="both messages")
    ran = dict(zip(calls.values(), calls.times(), strict=True))
    assert ran["now"] - sent < 2.0
    # Not before its delay, and soon after it: the consumer sleeps until run_at (the
    # upper bounds leave room for a loaded machine).
    assert 1.2 <= ran["later"] - sent < 1.2 + 2.0


def test_retries_back_off_then_dead_letter(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    calls = Calls()

    def flaky(tag: str) -> None:
        calls.add(tag)
        raise ValueError(f"exchange said no to {tag}")

    actor = dramatiq.actor(flaky, broker=broker, max_retries=3, min_backoff=100, max_backoff=5000)
    message = actor.send("x")
    with running_worker(broker):
        wait_until(
            lambda: (
                [j.state for j in store.jobs_of_message(conn, message.message_id)] == ["failed"]
            ),
            what="the message to be dead-lettered",
        )
    times = calls.times()
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Dramatiq's exponential backoff: at least 100, 200, 400 ms.
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4
    [failed] = store.failed_jobs(conn)
    assert failed.actor == "flaky"
    assert failed.args == ["x"]
    assert failed.attempts == 4
    assert failed.last_error == "ValueError: exchange said no to x"
    [job] = store.jobs_of_message(conn, message.message_id)
    assert job.message["options"]["retries"] == 4


def test_a_retry_that_succeeds_ends_done(broker: PostgresBroker, conn: psycopg.Connection) -> None:
    calls = Calls()

    def once_flaky() -> None:
        calls.add("call")
        if len(calls.values()) == 1:
            raise RuntimeError("first call fails")

    actor = dramatiq.actor(once_flaky, broker=broker, min_backoff=50)
    message = actor.send()
    with running_worker(broker):
        broker.join("default", timeout=10_000)
    [job] = store.jobs_of_message(conn, message.message_id)
    assert (job.state, job.attempts, job.last_error) == (
        "done",
        2,
        "RuntimeError: first call fails",
    )


def test_time_limit_and_age_limit_fail_messages(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    calls = Calls()

    def slow() -> None:
        for _ in range(100):
            time.sleep(0.02)
        calls.add("slow finished")

    slow_actor = dramatiq.actor(slow, broker=broker, time_limit=200, max_retries=0)
    echo = dramatiq.actor(calls.add, broker=broker, actor_name="echo")
    slow_message = slow_actor.send()
    stale = echo.send_with_options(args=("stale",), max_age=1)
    time.sleep(0.01)
    with running_worker(broker):
        broker.join("default", timeout=10_000)
    assert calls.values() == []
    [slow_job] = store.jobs_of_message(conn, slow_message.message_id)
    assert slow_job.state == "failed"
    assert slow_job.last_error is not None
    assert slow_job.last_error.startswith(TimeLimitExceeded.__name__)
    [stale_job] = store.jobs_of_message(conn, stale.message_id)
    assert stale_job.state == "failed"


def test_pipelines_and_callbacks_run(broker: PostgresBroker) -> None:
    calls = Calls()

    def double(n: int) -> int:
        return n * 2

    def record(value: object) -> None:
        calls.add(value)

    def on_done(message: dict[str, object], result: object) -> None:
        calls.add(("callback", result))

    double_actor = dramatiq.actor(double, broker=broker)
    record_actor = dramatiq.actor(record, broker=broker)
    dramatiq.actor(on_done, broker=broker)
    dramatiq.pipeline([double_actor.message(21), record_actor.message()], broker=broker).run()
    double_actor.send_with_options(args=(5,), on_success="on_done")
    with running_worker(broker):
        wait_until(lambda: len(calls.values()) == 2, what="pipeline and callback")
        broker.join("default", timeout=10_000)
    assert sorted(calls.values(), key=repr) == [("callback", 10), 42]


def test_send_inside_a_transaction_exists_only_if_it_commits(
    broker: PostgresBroker, db_url: str, conn: psycopg.Connection
) -> None:
    calls = Calls()
    echo = dramatiq.actor(calls.add, broker=broker, actor_name="echo")
    with psycopg.connect(db_url) as sender:
        with broker.transaction(sender):
            echo.send("rolled back")
        sender.rollback()
        with broker.transaction(sender):
            echo.send("committed")
        # Not visible to anyone before the sender commits.
        assert _states(conn) == {}
        sender.commit()
    assert _states(conn) == {"queued": 1}
    with running_worker(broker):
        broker.join("default", timeout=10_000)
    assert calls.values() == ["committed"]


def test_sends_outside_the_block_do_not_join_the_transaction(
    broker: PostgresBroker, db_url: str, conn: psycopg.Connection
) -> None:
    echo = dramatiq.actor(lambda tag: None, broker=broker, actor_name="echo")
    with psycopg.connect(db_url) as sender:
        with broker.transaction(sender):
            echo.send("inside")
        echo.send("outside")
        sender.rollback()
    [row] = conn.execute("SELECT message -> 'args' FROM jobs").fetchall()
    assert row == (["outside"],)


def test_batch_is_inherited_by_messages_sent_while_processing(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    calls = Calls()
    leaf = dramatiq.actor(calls.add, broker=broker, actor_name="leaf")

    def fan_out(n: int) -> None:
        for i in range(n):
            leaf.send(i)

    root = dramatiq.actor(fan_out, broker=broker)
    root.send_with_options(args=(3,), batch="sync-1")
    root.send_with_options(args=(2,))
    assert store.batch_progress(conn, "sync-1") == (1, 0, 0, 0)
    with running_worker(broker):
        broker.join("default", timeout=10_000)
    assert len(calls.values()) == 5
    assert store.batch_progress(conn, "sync-1") == (0, 0, 4, 0)
    assert store.batch_progress(conn, "sync-1").finished
    options = conn.execute(
        "SELECT message -> 'options' ->> 'batch' FROM jobs WHERE actor = 'leaf'"
    ).fetchall()
    assert sorted(o[0] or "" for o in options) == ["", "", "sync-1", "sync-1", "sync-1"]


def test_purge_keeps_failed_jobs_until_their_own_age(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    def fail() -> None:
        raise ValueError("kept for inspection")

    echo = dramatiq.actor(lambda: None, broker=broker, actor_name="echo")
    failing = dramatiq.actor(fail, broker=broker, max_retries=0)
    for _ in range(3):
        echo.send()
    failing.send()
    echo.send_with_options(delay=60_000)
    with running_worker(broker):
        wait_until(lambda: _states(conn) == {"done": 3, "failed": 1, "queued": 1})
    assert broker.purge_finished(3600) == 0
    assert broker.purge_finished(0) == 3
    assert _states(conn) == {"failed": 1, "queued": 1}
    assert broker.purge_finished(0, failed_older_than_s=0) == 1
    assert _states(conn) == {"queued": 1}


def test_shutdown_releases_claimed_messages(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    dramatiq.actor(lambda: None, broker=broker, actor_name="echo").send()
    consumer = broker.consume("default", prefetch=4, timeout=100)
    message = next(consumer)
    assert message is not None
    assert _states(conn) == {"running": 1}
    consumer.requeue([message])
    consumer.close()
    assert conn.execute("SELECT state, lease_owner FROM jobs").fetchall() == [("queued", None)]


def test_dedup_running_needs_a_key(broker: PostgresBroker) -> None:
    echo = dramatiq.actor(lambda: None, broker=broker, actor_name="echo")
    with pytest.raises(DedupOptionsInvalid):
        echo.send_with_options(dedup_running=True)


def test_worker_and_sender_survive_lost_connections(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    calls = Calls()
    echo = dramatiq.actor(calls.add, broker=broker, actor_name="echo")
    with running_worker(broker, threads=2):
        echo.send(1)
        wait_until(lambda: calls.values() == [1], what="the first message")
        # What a database restart does to every open connection of the broker.
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        conn.commit()
        assert killed is not None and killed[0] >= 2
        echo.send(2)
        wait_until(lambda: calls.values() == [1, 2], timeout_s=20, what="the second message")
        broker.join("default", timeout=20_000)
    assert _states(conn) == {"done": 2}


def test_shutdown_interrupts_a_long_message_and_queues_it_again(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    started = threading.Event()

    def long_running() -> None:
        started.set()
        for _ in range(1000):
            time.sleep(0.01)

    actor = dramatiq.actor(broker=broker, notify_shutdown=True, min_backoff=60_000)(long_running)
    message = actor.send()
    with running_worker(broker):
        assert started.wait(30)
    # Stopping the worker raised Shutdown in the actor (ShutdownNotifications), and
    # Retries put the message back in the queue for a later worker.
    [job] = store.jobs_of_message(conn, message.message_id)
    assert (job.state, job.attempts) == ("queued", 1)
    assert job.last_error is not None and job.last_error.startswith("Shutdown")


def test_stopping_a_worker_finishes_its_message_and_releases_the_prefetched(
    broker: PostgresBroker, conn: psycopg.Connection
) -> None:
    started = threading.Event()

    def slow(i: int) -> None:
        started.set()
        time.sleep(0.5)

    actor = dramatiq.actor(slow, broker=broker)
    for i in range(6):
        actor.send(i)
    with running_worker(broker, threads=1):
        assert started.wait(30)
    assert _states(conn) == {"done": 1, "queued": 5}
    assert conn.execute("SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL").fetchone() == (
        0,
    )


def test_a_retry_the_database_refused_is_stored_by_the_ack(
    broker: PostgresBroker, db_url: str
) -> None:
    calls = Calls()

    def fails_as_the_database_restarts() -> None:
        calls.add("call")
        if len(calls.values()) == 1:
            # Every connection of the broker dies, as in a restart, then the actor fails:
            # the Retries middleware's re-send meets a dead connection.
            with psycopg.connect(db_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            raise RuntimeError("failed while the database restarted")

    actor = dramatiq.actor(fails_as_the_database_restarts, broker=broker, min_backoff=50)
    message = actor.send()
    with running_worker(broker):
        wait_until(lambda: len(calls.values()) == 2, timeout_s=30, what="the retry")
        broker.join("default", timeout=30_000)
    with psycopg.connect(db_url) as conn:
        [job] = store.jobs_of_message(conn, message.message_id)
    assert (job.state, job.attempts) == ("done", 2)
