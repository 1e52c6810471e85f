"""A Dramatiq broker over PostgreSQL: the project's own `jobs` table, no Redis or RabbitMQ.

Why our own: the PyPI brokers (dramatiq-postgres, dramatiq-pg) have neither
de-duplication keys nor sending inside the caller's transaction, and the ingest
pipeline needs both. Dramatiq itself is kept whole: its worker, actors and
middleware (Retries, TimeLimit, AgeLimit, Callbacks, Pipelines,
ShutdownNotifications) run unchanged on this broker. All SQL is in storage/jobs.py.

Guarantees
- At least once: a message is delivered until a worker acks it (done), rejects it
  (failed), or its de-duplication key is merged into another queued message.
  Actors must be idempotent, as Dramatiq requires of every broker.
- Transactional send: inside `with broker.transaction(conn):` messages are inserted
  on `conn`, so they exist if and only if the caller's transaction commits.
- De-duplication: a message sent with option `dedup_key` is not queued while a
  message with that key is queued (or, sent with `dedup_running=True`, running); the
  unique index makes this one atomic statement, never a read-then-write race.
- Batches: option `batch` tags a message (option `batches`, a list, with several);
  messages sent while a tagged message is processed inherit its batches, and a
  de-duplicated send adds its batches to the message that absorbed it.
  `storage.jobs.batch_progress` counts a batch's states.
- Fairness: option `fair_key` (an org's id) says whom a message is for; a queue's
  messages are claimed round robin over their keys, oldest first within each, so
  many messages of one key cannot hold back another's (storage/jobs.py).
- Leases: a claimed message is leased to its worker for `lease_s`; the worker's
  heartbeat (every `lease_s / 3`) renews the leases of all messages it holds. When
  a worker dies (even `kill -9`), any live worker re-delivers its messages at its
  next heartbeat after the lease ran out: within `lease_s + lease_s / 3`. After
  `max_deliveries` expired leases a message is failed rather than crash more workers.
- Delays and retries: `delay` and Dramatiq's retry backoff set the row's `run_at`;
  a retry updates the same row (attempts, last error); one the database refuses at
  that moment is stored by the ack instead, which Dramatiq repeats until the database
  is back. Consumers sleep until the next `run_at`, a NOTIFY (sent at commit), or
  `poll_s`, whichever comes first.
- Not covered: a message that Callbacks or Pipelines send while the database is
  away is lost (Dramatiq logs it); the project's actors send their follow-ups inside
  their own transaction instead.
- Dead letters: a rejected message stays as a `failed` row with its attempts and
  last error. Done rows are purged after `keep_done_s`, failed ones after
  `keep_failed_s`, by any worker's heartbeat and by `purge_finished`.

Messages are stored as jsonb, so their arguments must be JSON values (Dramatiq's
default encoder has the same rule).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import dramatiq
import psycopg
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import ConnectionClosed, QueueJoinTimeout
from dramatiq.middleware import Middleware
from psycopg_pool import ConnectionPool

from hl_core.errors import HLAnalyticsError
from jobs.consumer import (
    JobProxy,
    PostgresConsumer,
    connection_closed,
    error_of,
)
from storage import jobs as store
from storage.db import borrow, sync_pool
from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

PURGE_EVERY_S = 60.0

_transaction: ContextVar[tuple[PostgresBroker, psycopg.Connection] | None] = ContextVar(
    "hl_jobs_transaction", default=None
)
_processing = threading.local()


class DedupOptionsInvalid(HLAnalyticsError):
    """Option dedup_running=True needs a dedup_key: pass both, or neither."""


def _current_job(broker: PostgresBroker) -> JobProxy | None:
    current = getattr(_processing, "job", None)
    return current[1] if current is not None and current[0] is broker else None


class _Lifecycle(Middleware):
    """Ties the heartbeat to Dramatiq's worker and remembers which message a thread runs."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, PostgresBroker)
        broker._start_heartbeat()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, PostgresBroker)
        broker._stop_heartbeat()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if isinstance(message, JobProxy):
            _processing.job = (broker, message)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        _processing.job = None

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        _processing.job = None


class PostgresBroker(dramatiq.Broker):
    """Dramatiq broker on the `jobs` table; see the module docstring for its guarantees."""

    def __init__(
        self,
        database_url: str,
        *,
        middleware: list[Middleware] | None = None,
        lease_s: float = 30.0,
        poll_s: float = 1.0,
        pool_size: int = 4,
        max_deliveries: int = 10,
        keep_done_s: float = 3600.0,
        keep_failed_s: float = 7 * 86400.0,
    ) -> None:
        super().__init__(middleware=middleware)
        # First, so that its after_* hooks run last: the Retries middleware re-sends
        # a message from its own after_process_message, while it is still "current".
        self.middleware.insert(0, _Lifecycle())
        self.database_url = database_url
        self.queues: set[str] = set()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.pool_size = pool_size
        self.max_deliveries = max_deliveries
        self.keep_done_s = keep_done_s
        self.keep_failed_s = keep_failed_s
        self._worker_id = ""
        self._worker_pid = 0
        _ = self.worker_id
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._heartbeat: Heartbeat | None = None

    # -- sending --------------------------------------------------------------------

    @contextmanager
    def transaction(self, conn: psycopg.Connection) -> Iterator[None]:
        """Messages sent inside this block are inserted on `conn`, in the caller's transaction."""
        token = _transaction.set((self, conn))
        try:
            yield
        finally:
            _transaction.reset(token)

    def current_job_id(self) -> int | None:
        """The `jobs` row of the message this thread is processing on this broker, if any."""
        job = _current_job(self)
        return job.job_id if job is not None else None

    def enqueue(
        self, message: dramatiq.Message[Any], *, delay: int | None = None
    ) -> dramatiq.Message[Any]:
        if isinstance(message, JobProxy):
            # Only the Retries middleware sends a delivered message again.
            return self._retry(message, delay or 0)
        options = message.options
        if options.get("dedup_running") and not options.get("dedup_key"):
            raise DedupOptionsInvalid()
        parent = _current_job(self)
        if parent is not None and "batch" not in options and parent.options.get("batch"):
            message = message.copy(options={"batch": parent.options["batch"]})
        batch = message.options.get("batch")
        batches = {str(b) for b in message.options.get("batches") or ()}
        if batch:
            batches.add(str(batch))
        fields: dict[str, Any] = {
            "delay_ms": int(delay or 0),
            "dedup_key": message.options.get("dedup_key"),
            "dedup_running": bool(message.options.get("dedup_running", False)),
            "batches": sorted(batches),
            "parent_id": parent.job_id if parent is not None else None,
            "fair_key": str(message.options.get("fair_key") or ""),
        }
        self.emit_before("enqueue", message, delay)
        current = _transaction.get()
        if current is not None and current[0] is self:
            store.insert_job(current[1], message.asdict(), **fields)
        else:
            self._insert_with_retry(message.asdict(), fields)
        self.emit_after("enqueue", message, delay)
        return message

    def _insert_with_retry(self, payload: dict[str, Any], fields: dict[str, Any]) -> None:
        # Every pooled connection may have died with a database restart: the pool
        # replaces each broken one as it comes back, so one more try than the pool holds.
        tries = self.pool_size + 1
        for attempt in range(1, tries + 1):
            try:
                with self.connection() as conn:
                    store.insert_job(conn, payload, **fields)
                return
            except ConnectionClosed as exc:
                if attempt == tries:
                    raise DatabaseUnavailable(
                        f"cannot queue a job ({exc}): check DATABASE_URL and that "
                        "PostgreSQL is running"
                    ) from None

    def _retry(self, message: JobProxy, delay_ms: int) -> dramatiq.Message[Any]:
        self.emit_before("enqueue", message, delay_ms)
        try:
            with self.connection() as conn:
                store.requeue_job(
                    conn,
                    message.job_id,
                    message.attempts,
                    delay_ms=delay_ms,
                    message=message.asdict(),
                    error=error_of(message),
                )
        except ConnectionClosed as exc:
            # The database is away (a restart). Dramatiq acks this delivery next, and an
            # ack stores `done`: the job would be lost. The ack stores the retry instead,
            # and Dramatiq retries a failed ack until the connection is back.
            message.pending_retry_ms = delay_ms
            log.warning(
                "job %s: cannot queue its retry now (%s); the ack will",
                message.job_id,
                exc,
                extra={"action": "retry_deferred", "job_id": message.job_id},
            )
            return message._message
        self.emit_after("enqueue", message, delay_ms)
        return message._message

    # -- Dramatiq's broker interface -------------------------------------------------

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> Consumer:
        return PostgresConsumer(self, queue_name, prefetch, timeout)

    def declare_queue(self, queue_name: str) -> None:
        # No delay queues: a delayed message waits in the table until its run_at.
        if queue_name not in self.queues:
            self.emit_before("declare_queue", queue_name)
            self.queues.add(queue_name)
            self.emit_after("declare_queue", queue_name)

    def get_declared_queues(self) -> set[str]:
        return set(self.queues)

    def flush(self, queue_name: str) -> None:
        with self.connection() as conn:
            store.delete_queued(conn, queue_name)

    def flush_all(self) -> None:
        for queue_name in self.get_declared_queues():
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: int | None = None, interval: int = 50) -> None:
        """Waits until the queue has nothing queued or running (for tests and scripts)."""
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while True:
            with self.connection() as conn:
                if store.unfinished_count(conn, queue_name) == 0:
                    return
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)  # type: ignore[no-untyped-call]
            time.sleep(interval / 1000)

    def close(self) -> None:
        self._stop_heartbeat()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # -- housekeeping ---------------------------------------------------------------

    def requeue_expired(self) -> int:
        """Re-delivers messages whose lease expired; returns how many (failed ones included)."""
        count = 0
        with self.connection() as conn:
            for job_id, attempts, owner in store.expired_jobs(conn):
                if attempts >= self.max_deliveries:
                    error = f"lease expired {attempts} times (last worker {owner}): gave up"
                    done = store.finish_job(
                        conn, job_id, attempts, failed=True, error=error, expired_only=True
                    )
                else:
                    error = f"lease of worker {owner} expired: delivered again"
                    done = (
                        store.requeue_job(conn, job_id, attempts, error=error, expired_only=True)
                        is not None
                    )
                if done:
                    count += 1
                    log.warning(
                        "job %s: %s",
                        job_id,
                        error,
                        extra={"action": "requeue_expired", "job_id": job_id},
                    )
        return count

    def purge_finished(self, older_than_s: float, failed_older_than_s: float | None = None) -> int:
        """Deletes done jobs older than `older_than_s` and failed ones older than
        `failed_older_than_s` (default `keep_failed_s`); returns how many."""
        failed_s = self.keep_failed_s if failed_older_than_s is None else failed_older_than_s
        with self.connection() as conn:
            return store.purge_finished(conn, older_than_s, failed_s)

    def _beat(self, purge: bool) -> None:
        with self.connection() as conn:
            store.heartbeat(conn, self.worker_id, socket.gethostname(), os.getpid(), self.lease_s)
        self.requeue_expired()
        if purge:
            self.purge_finished(self.keep_done_s)
            with self.connection() as conn:
                store.remove_stale_workers(conn, max(self.keep_done_s, 10 * self.lease_s))

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = Heartbeat(self)
            self._heartbeat.start()

    def _stop_heartbeat(self) -> None:
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.stop()
            try:
                with self.connection() as conn:
                    store.remove_worker(conn, self.worker_id)
            except ConnectionClosed:
                pass  # the row is removed later, as a stale worker

    # -- connections ----------------------------------------------------------------

    @property
    def worker_id(self) -> str:
        """Owner of this process's leases and its `job_workers` row; a forked child gets its own."""
        pid = os.getpid()
        if pid != self._worker_pid:
            self._worker_id = f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"
            self._worker_pid = pid
        return self._worker_id

    def _get_pool(self) -> ConnectionPool:
        # Opened on first use, so that building the broker at import time (as
        # Dramatiq's actor modules do) touches no database and survives a fork.
        with self._pool_lock:
            if self._pool is None:
                self._pool = sync_pool(
                    self.database_url,
                    max_size=self.pool_size,
                    name="hl-analytics-broker",
                    autocommit=True,
                    check=False,
                )
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection; a lost database (`DatabaseUnavailable`, from the
        storage error boundary) becomes Dramatiq's ConnectionClosed, which its worker
        answers by retrying the ack later."""
        try:
            with borrow(self._get_pool()) as conn:
                yield conn
        except DatabaseUnavailable as exc:
            raise connection_closed(exc) from exc


class Heartbeat(threading.Thread):
    """Renews this worker's leases, re-delivers expired ones, and purges old rows
    (the broker's `_beat`, every `lease_s / 3`)."""

    def __init__(self, broker: PostgresBroker) -> None:
        super().__init__(daemon=True, name="hl-jobs-heartbeat")
        self.broker = broker
        self._stopped = threading.Event()

    def run(self) -> None:
        interval = self.broker.lease_s / 3
        last_purge = 0.0
        while not self._stopped.is_set():
            purge = time.monotonic() - last_purge >= PURGE_EVERY_S
            try:
                self.broker._beat(purge)
                if purge:
                    last_purge = time.monotonic()
            except Exception as exc:
                log.warning(
                    "broker heartbeat failed (%s); retrying in %.1fs",
                    exc,
                    interval,
                    extra={"action": "heartbeat_failed"},
                )
            self._stopped.wait(interval)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)
