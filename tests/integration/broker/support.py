"""What the broker tests share: a broker on the test database, a running worker, a log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dramatiq
import psycopg
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from jobs.broker import PostgresBroker


def standard_middleware(min_backoff_ms: int = 50, max_backoff_ms: int = 5000) -> list[Middleware]:
    """Dramatiq's default middleware, with backoffs short enough for a test."""
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(min_backoff=min_backoff_ms, max_backoff=max_backoff_ms),
    ]


def make_broker(url: str, **options: float) -> PostgresBroker:
    settings: dict[str, float] = {"lease_s": 5.0, "poll_s": 0.2, **options}
    return PostgresBroker(
        url,
        middleware=standard_middleware(),
        lease_s=settings["lease_s"],
        poll_s=settings["poll_s"],
    )


@contextmanager
def running_worker(broker: dramatiq.Broker, threads: int = 2) -> Iterator[dramatiq.Worker]:
    # What Dramatiq's own CLI does in each worker process (TimeLimit starts its timer then).
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10_000)


class Calls:
    """What actors did, with when, shared between worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[float, object]] = []

    def add(self, item: object) -> None:
        with self._lock:
            self.items.append((time.monotonic(), item))

    def values(self) -> list[object]:
        with self._lock:
            return [v for _, v in self.items]

    def times(self) -> list[float]:
        with self._lock:
            return [t for t, _ in self.items]


def requeue_when_expired(broker: PostgresBroker, timeout_s: float = 30.0) -> int:
    """Calls `requeue_expired` until a lease has run out; returns how many it requeued."""
    deadline = time.monotonic() + timeout_s
    while (count := broker.requeue_expired()) == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no lease ran out within {timeout_s}s")
        time.sleep(0.02)
    return count


def waits_on_a_lock(url: str, backend_pid: int) -> bool:
    """Whether the session of `backend_pid` is blocked waiting for a lock right now."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (backend_pid,)
        ).fetchone()
    return row is not None and row[0] == "Lock"


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
