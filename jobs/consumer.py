"""The broker's consumer: claims under a lease, LISTEN/NOTIFY wake-ups, acks.

Split from jobs/broker.py, whose docstring states the guarantees; the SQL is in
storage/jobs.py. The consumer knows the broker only through `ConsumerBroker`
(its settings, its worker id, and its pooled connections); the broker imports
this module, never the other way round, and keeps the heartbeat that renews the
leases of what its consumers claimed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import dramatiq
import psycopg
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import ConnectionClosed

from storage import jobs as store
from storage.db import connect, errors
from storage.errors import DatabaseUnavailable, first_line

log = logging.getLogger(__name__)

# Messages a consumer claims in one round trip at most, whatever its prefetch.
CLAIM_MAX = 64
# The shortest sleep of an idle consumer: due messages may be locked by a sender's
# open transaction (an ON CONFLICT merge), and must not make the consumer spin.
MIN_WAIT_S = 0.02


class JobProxy(MessageProxy):
    """A delivered message and the row it came from; `attempts` fences stale workers."""

    def __init__(self, message: dramatiq.Message[Any], job_id: int, attempts: int) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.attempts = attempts
        # A retry the Retries middleware asked for while the database was away: it is
        # stored by the ack instead (see PostgresBroker._retry).
        self.pending_retry_ms: int | None = None


def decode(payload: dict[str, Any]) -> dramatiq.Message[Any]:
    """A message from its jsonb row (JSON has no tuples: args come back as a list)."""
    return dramatiq.Message(**{**payload, "args": tuple(payload["args"])})


def error_of(message: MessageProxy) -> str | None:
    """One line for `last_error`: the exception the worker stuffed into the message, or
    the last line of the traceback the Retries middleware left in its options."""
    exc = getattr(message, "_exception", None)
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"[:4000]
    traceback = message.options.get("traceback")
    return traceback.strip().splitlines()[-1] if traceback else None


def connection_closed(exc: BaseException) -> ConnectionClosed:
    return ConnectionClosed(first_line(exc))  # type: ignore[no-untyped-call]


class ConsumerBroker(Protocol):
    """What a consumer needs of its broker."""

    database_url: str
    lease_s: float
    poll_s: float

    @property
    def worker_id(self) -> str:
        """Owner of the leases this process takes."""
        ...

    def connection(self) -> AbstractContextManager[psycopg.Connection]:
        """A pooled autocommit connection; a lost database is Dramatiq's ConnectionClosed."""
        ...


class PostgresConsumer(Consumer):
    """Claims messages of one queue under a lease, up to `prefetch` not yet acked.

    Its own connection LISTENs for `hl_jobs` and claims; acks come from worker
    threads and go through the broker's pool.
    """

    def __init__(self, broker: ConsumerBroker, queue_name: str, prefetch: int, timeout: int):
        self.broker = broker
        self.queue_name = queue_name
        self.prefetch = max(1, prefetch)
        self.timeout_s = timeout / 1000
        self._conn: psycopg.Connection | None = None
        self._buffer: deque[JobProxy] = deque()
        self._outstanding: set[int] = set()
        self._lock = threading.Lock()
        self._freed = threading.Event()
        self._blocked = False

    def __next__(self) -> MessageProxy | None:
        try:
            with errors():
                if not self._buffer:
                    self._claim()
                if not self._buffer:
                    self._wait()
                    self._claim()
        except DatabaseUnavailable as exc:
            self._drop_connection()
            raise connection_closed(exc) from exc
        return self._buffer.popleft() if self._buffer else None

    def ack(self, message: MessageProxy) -> None:
        self._finish(message, failed=False)

    def nack(self, message: MessageProxy) -> None:
        self._finish(message, failed=True)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        """Releases claimed but unprocessed messages (worker shutdown)."""
        proxies = [m for m in messages if isinstance(m, JobProxy)]
        if not proxies:
            return
        with self.broker.connection() as conn:
            for proxy in proxies:
                store.requeue_job(conn, proxy.job_id, proxy.attempts)
        self._release(*(p.job_id for p in proxies))

    def close(self) -> None:
        try:
            buffered, self._buffer = list(self._buffer), deque()
            self.requeue(buffered)
        finally:
            self._drop_connection()

    def _finish(self, message: MessageProxy, *, failed: bool) -> None:
        assert isinstance(message, JobProxy)
        try:
            with self.broker.connection() as conn:
                if message.pending_retry_ms is not None and not failed:
                    store.requeue_job(
                        conn,
                        message.job_id,
                        message.attempts,
                        delay_ms=message.pending_retry_ms,
                        message=message.asdict(),
                        error=error_of(message),
                    )
                    return
                store.finish_job(
                    conn,
                    message.job_id,
                    message.attempts,
                    failed=failed,
                    # A dead letter keeps its last options (retries, traceback) for inspection.
                    error=error_of(message) if failed else None,
                    message=message.asdict() if failed else None,
                )
        finally:
            self._release(message.job_id)

    def _release(self, *job_ids: int) -> None:
        with self._lock:
            self._outstanding.difference_update(job_ids)
        self._freed.set()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self.broker.database_url,
                autocommit=True,
                application_name="hl-analytics-consumer",
            )
            self._conn.execute(f"LISTEN {store.CHANNEL}")
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _claim(self) -> None:
        with self._lock:
            free = self.prefetch - len(self._outstanding)
        if free <= 0:
            return
        claimed = store.claim_jobs(
            self._connection(),
            self.queue_name,
            self.broker.worker_id,
            min(free, CLAIM_MAX),
            self.broker.lease_s,
        )
        with self._lock:
            self._outstanding.update(c.id for c in claimed)
        self._buffer.extend(JobProxy(decode(c.message), c.id, c.attempts) for c in claimed)
        if claimed:
            self._blocked = False

    def _wait(self) -> None:
        """Sleeps until a message may be ready: a NOTIFY, the next run_at, or the poll interval."""
        seconds = min(self.timeout_s, self.broker.poll_s)
        with self._lock:
            full = len(self._outstanding) >= self.prefetch
        if full:
            self._freed.wait(seconds)
            self._freed.clear()
            return
        conn = self._connection()
        due = store.next_run_in_s(conn, self.queue_name)
        if due is not None and due > 0:
            seconds = max(MIN_WAIT_S, min(seconds, due))
        elif due is not None and not self._blocked:
            # Due, yet not claimed: it may have come due just now, so look again soon.
            self._blocked = True
            seconds = MIN_WAIT_S
        # Otherwise the due messages are locked by a sender whose transaction is still
        # open; its commit sends the NOTIFY that ends this wait.
        for notify in conn.notifies(timeout=seconds):
            if notify.payload == self.queue_name:
                break
