"""Leases: one consumer per message, expired leases re-delivered, heartbeats renew them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import psycopg
import pytest

from jobs.broker import PostgresBroker
from storage import jobs as store
from tests.integration.broker import worker_process
from tests.integration.broker.support import (
    Calls,
    make_broker,
    read_lines,
    requeue_when_expired,
    running_worker,
)
from tests.waiting import wait_until


def test_two_consumers_never_get_the_same_message(db_url: str, conn: psycopg.Connection) -> None:
    brokers = [make_broker(db_url), make_broker(db_url)]
    try:
        for b in brokers:
            dramatiq.actor(lambda i: None, broker=b, actor_name="echo")
        sender = brokers[0].get_actor("echo")
        for i in range(600):
            sender.send(i)
        seen: Counter[int] = Counter()
        lock = threading.Lock()

        def drain(b: PostgresBroker) -> None:
            consumer = b.consume("default", prefetch=8, timeout=100)
            idle = 0
            while idle < 3:
                message = next(consumer)
                if message is None:
                    idle += 1
                    continue
                idle = 0
                with lock:
                    seen[message.args[0]] += 1
                consumer.ack(message)
            consumer.close()

        threads = [threading.Thread(target=drain, args=(b,)) for b in brokers for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for b in brokers:
            b.close()
    assert sorted(seen) == list(range(600))
    assert set(seen.values()) == {1}
    assert {d.state: d.count for d in store.queue_depth(conn)} == {"done": 600}


def test_expired_lease_is_delivered_again_and_the_stale_ack_is_fenced(
    db_url: str, conn: psycopg.Connection
) -> None:
    # A lease long enough that a loaded machine cannot let it run out before the
    # first check, and a bare consumer (no heartbeat) whose lease then runs out.
    broker = make_broker(db_url, lease_s=2.0)
    try:
        dramatiq.actor(lambda: None, broker=broker, actor_name="echo").send()
        consumer = broker.consume("default", prefetch=2, timeout=100)
        first = next(consumer)
        assert first is not None
        assert broker.requeue_expired() == 0
        assert requeue_when_expired(broker) == 1
        second = next(consumer)
        assert second is not None and second.message_id == first.message_id
        consumer.ack(first)  # the stale delivery finishes nothing
        [job] = store.jobs_of_message(conn, first.message_id)
        assert (job.state, job.attempts) == ("running", 2)
        assert job.last_error is not None and "expired" in job.last_error
        consumer.ack(second)
        consumer.close()
        [job] = store.jobs_of_message(conn, first.message_id)
        assert (job.state, job.attempts) == ("done", 2)
    finally:
        broker.close()


def test_a_message_whose_lease_keeps_expiring_is_failed(
    db_url: str, conn: psycopg.Connection
) -> None:
    broker = PostgresBroker(db_url, lease_s=0.05, max_deliveries=2)
    try:
        dramatiq.actor(lambda: None, broker=broker, actor_name="echo").send()
        consumer = broker.consume("default", prefetch=2, timeout=100)
        for _ in range(2):
            assert next(consumer) is not None
            assert requeue_when_expired(broker) == 1
        consumer.close()
        [failed] = store.failed_jobs(conn)
        assert failed.attempts == 2
        assert failed.last_error is not None and "gave up" in failed.last_error
    finally:
        broker.close()


def test_heartbeat_keeps_a_long_message_leased(db_url: str, conn: psycopg.Connection) -> None:
    # The message runs for more than two leases; the heartbeat (every lease / 3) has
    # a whole lease of slack to be scheduled on a loaded machine.
    broker = make_broker(db_url, lease_s=1.5)
    calls = Calls()

    def long_running() -> None:
        calls.add("start")
        time.sleep(3.5)

    try:
        message = dramatiq.actor(long_running, broker=broker).send()
        with running_worker(broker):
            wait_until(
                lambda: conn.execute("SELECT count(*) FROM job_workers").fetchone() == (1,),
                what="the worker's heartbeat row",
            )
            broker.join("default", timeout=10_000)
        assert calls.values() == ["start"]
        [job] = store.jobs_of_message(conn, message.message_id)
        assert (job.state, job.attempts) == ("done", 1)
        # A worker that stopped cleanly leaves no heartbeat row behind.
        assert conn.execute("SELECT count(*) FROM job_workers").fetchone() == (0,)
    finally:
        broker.close()


@pytest.fixture
def spawn(db_url: str, tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield tmp_path / "actor.log", procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _start_worker(url: str, log: Path, lease_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", worker_process.__name__, url, str(log), str(lease_s)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )


@pytest.mark.slow
def test_a_worker_killed_mid_message_has_it_delivered_again(
    db_url: str, conn: psycopg.Connection, spawn: tuple[Path, list[subprocess.Popen[bytes]]]
) -> None:
    log, procs = spawn
    lease_s = 1.0
    sender = PostgresBroker(db_url)
    try:
        message = worker_process.declare(sender, log).send("a")
    finally:
        sender.close()
    first = _start_worker(db_url, log, lease_s)
    procs.append(first)
    wait_until(lambda: f"start a {first.pid}" in read_lines(log), what="the first delivery")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.monotonic()
    second = _start_worker(db_url, log, lease_s)
    procs.append(second)
    wait_until(lambda: f"ready {second.pid}" in read_lines(log), timeout_s=30, what="start-up")
    ready_at = time.monotonic()
    wait_until(lambda: f"end a {second.pid}" in read_lines(log), timeout_s=20, what="redelivery")
    # Once the lease has run out and the new worker is up, one heartbeat period of the
    # new worker at most, plus scheduling slack: the suite must pass on a 2-core machine
    # under full CPU load, where a process may wait seconds for a core.
    waited = time.monotonic() - max(ready_at, killed_at + lease_s)
    assert waited < lease_s / 3 + 6
    wait_until(
        lambda: [j.state for j in store.jobs_of_message(conn, message.message_id)] == ["done"],
        what="the ack",
    )
    [job] = store.jobs_of_message(conn, message.message_id)
    assert job.attempts == 2
    assert [line.split()[0] for line in read_lines(log)].count("end") == 1
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    # The killed worker's heartbeat row stays until it is stale; the stopped one's is gone.
    workers = {r[0] for r in conn.execute("SELECT pid FROM job_workers")}
    assert second.pid not in workers
