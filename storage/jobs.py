"""The job queue (`jobs`) and worker heartbeats (`job_workers`): all of their SQL.

jobs/broker.py is the only writer. A job moves queued → running (claimed under a
lease) → done or failed, or back to queued (a retry, a released prefetch, an
expired lease). `attempts` counts deliveries and doubles as a fencing token: a
worker may finish or requeue a job only while it is still the delivery it was
given, so a worker that lost its lease cannot finish someone else's delivery.

Claims are fair between the keys of a queue (`fair_key`, 0017: the org an ingest
is for): the oldest due job of every key comes before the second of any, so one
org's thousands of queued ingests delay another's by at most one turn each. A
de-duplicated send that adds a batch also moves the job to its own key: whoever
waits on it now is who it is for (a wallet several orgs track is queued once).

De-duplication is one statement: the partial unique index `jobs_dedup_key` (0004)
holds the keys of queued jobs and of running jobs sent with `dedup_running`, and
`INSERT … ON CONFLICT` against it merges the new send's batches into the holder.
Every insert and requeue notifies channel `hl_jobs` with the queue's name, which
PostgreSQL delivers at commit: a rolled-back send wakes nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from storage.errors import StorageError

CHANNEL = "hl_jobs"
REQUEUE_TRIES = 3

# Children inherit the batches of the job that sent them (`parent_id`, may be NULL).
# Delays count from the send, not from the start of the sender's transaction. A
# merged send notifies too: it locked the holder until its commit, and consumers
# that found the holder locked wait for that commit.
# One row always: (inserted, notify).
INSERT_JOB = f"""
WITH job AS (
    INSERT INTO jobs (message_id, queue, actor, message, run_at, dedup_key, dedup_running, batches,
                      fair_key)
    VALUES (
        %(message_id)s, %(queue)s, %(actor)s, %(message)s,
        clock_timestamp() + %(delay_ms)s * interval '1 millisecond',
        %(dedup_key)s, %(dedup_running)s,
        ARRAY(SELECT DISTINCT b FROM unnest(%(batches)s::text[] || coalesce(
            (SELECT p.batches FROM jobs p WHERE p.id = %(parent_id)s), '{{}}')) AS b),
        %(fair_key)s
    )
    ON CONFLICT (dedup_key)
        WHERE dedup_key IS NOT NULL AND (state = 'queued' OR (state = 'running' AND dedup_running))
    DO UPDATE SET
        batches = ARRAY(SELECT DISTINCT b FROM unnest(jobs.batches || EXCLUDED.batches) b),
        fair_key = CASE WHEN EXCLUDED.fair_key = '' THEN jobs.fair_key ELSE EXCLUDED.fair_key END
        WHERE NOT jobs.batches @> EXCLUDED.batches
    RETURNING xmax = 0 AS inserted
)
SELECT coalesce(bool_or(inserted), false), pg_notify('{CHANNEL}', %(queue)s) FROM job
"""
# Round robin over the queue's fair keys: the keys are walked through the index one
# by one (a loose index scan: cheap however many jobs each has), each gives its
# `limit` oldest due jobs numbered by turn, and the claim takes them by turn, then
# the key served longest ago (`job_fair_turns`), then age; the keys it served are
# marked (in key order, so concurrent claims lock those rows in one order). Rows
# another consumer holds are skipped, as before.
CLAIM_JOBS = """
WITH RECURSIVE keys(k) AS (
    (SELECT fair_key FROM jobs WHERE queue = %(queue)s AND state = 'queued'
     ORDER BY fair_key LIMIT 1)
    UNION ALL
    SELECT (SELECT fair_key FROM jobs WHERE queue = %(queue)s AND state = 'queued'
            AND fair_key > keys.k ORDER BY fair_key LIMIT 1)
    FROM keys WHERE keys.k IS NOT NULL
), candidates AS (
    SELECT c.id, c.run_at, c.turn, keys.k AS fair_key FROM keys CROSS JOIN LATERAL (
        SELECT id, run_at, row_number() OVER (ORDER BY run_at, id) AS turn FROM jobs
        WHERE queue = %(queue)s AND state = 'queued' AND fair_key = keys.k AND run_at <= now()
        ORDER BY run_at, id
        LIMIT %(limit)s
    ) c
    WHERE keys.k IS NOT NULL
), next AS (
    SELECT j.id, c.fair_key FROM jobs j
    JOIN candidates c ON c.id = j.id
    LEFT JOIN job_fair_turns t ON t.queue = %(queue)s AND t.fair_key = c.fair_key
    WHERE j.state = 'queued'
    ORDER BY c.turn, t.served_at NULLS FIRST, c.run_at, c.id
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
), served AS (
    INSERT INTO job_fair_turns (queue, fair_key, served_at)
    SELECT %(queue)s, k.fair_key, clock_timestamp()
    FROM (SELECT DISTINCT fair_key FROM next) k ORDER BY k.fair_key
    ON CONFLICT (queue, fair_key) DO UPDATE SET served_at = EXCLUDED.served_at
)
UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = %(owner)s,
    lease_expires_at = now() + %(lease_s)s * interval '1 second', updated_at = now()
FROM next WHERE j.id = next.id
RETURNING j.id, j.attempts, j.message
"""
NEXT_RUN_IN = """
SELECT extract(epoch FROM min(run_at) - now()) FROM jobs WHERE queue = %s AND state = 'queued'
"""
FINISH_JOB = """
UPDATE jobs SET state = %(state)s, last_error = coalesce(%(error)s, last_error),
    message = coalesce(%(message)s, message),
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = %(id)s AND state = 'running' AND attempts = %(attempts)s
  AND (NOT %(expired_only)s OR lease_expires_at < now())
"""
# Back to the queue; unless another job already holds the de-duplication key
# (sent while this one ran): that job inherits this one's batches and this one
# ends as done, because the holder does the same work.
REQUEUE_JOB = f"""
WITH job AS (
    SELECT id, dedup_key, batches FROM jobs
    WHERE id = %(id)s AND state = 'running' AND attempts = %(attempts)s
      AND (NOT %(expired_only)s OR lease_expires_at < now())
    FOR UPDATE
), holder AS (
    UPDATE jobs q SET batches = ARRAY(SELECT DISTINCT b FROM unnest(q.batches || job.batches) b)
    FROM job
    WHERE q.dedup_key = job.dedup_key AND q.id <> job.id
      AND (q.state = 'queued' OR (q.state = 'running' AND q.dedup_running))
    RETURNING q.id
)
UPDATE jobs j SET
    state = CASE WHEN EXISTS (SELECT FROM holder) THEN 'done' ELSE 'queued' END,
    run_at = clock_timestamp() + %(delay_ms)s * interval '1 millisecond',
    message = coalesce(%(message)s, j.message),
    last_error = coalesce(%(error)s, j.last_error),
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
FROM job WHERE j.id = job.id
RETURNING j.state, pg_notify('{CHANNEL}', j.queue)
"""
SELECT_EXPIRED = """
SELECT id, attempts, lease_owner FROM jobs
WHERE state = 'running' AND lease_expires_at < now()
ORDER BY lease_expires_at LIMIT %s
"""
HEARTBEAT = """
WITH worker AS (
    INSERT INTO job_workers (worker_id, hostname, pid) VALUES (%(worker)s, %(hostname)s, %(pid)s)
    ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
)
UPDATE jobs SET lease_expires_at = now() + %(lease_s)s * interval '1 second'
WHERE state = 'running' AND lease_owner = %(worker)s
"""
DELETE_WORKER = "DELETE FROM job_workers WHERE worker_id = %s"
DELETE_STALE_WORKERS = """
DELETE FROM job_workers WHERE heartbeat_at < now() - %s * interval '1 second'
"""
# In slices, skipping rows another purger holds, so that purgers never wait on each other.
PURGE_FINISHED = """
WITH doomed AS (
    SELECT id FROM jobs
    WHERE (state = 'done' AND updated_at < now() - %(done_s)s * interval '1 second')
       OR (state = 'failed' AND updated_at < now() - %(failed_s)s * interval '1 second')
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM jobs USING doomed WHERE jobs.id = doomed.id
"""
DELETE_QUEUED = "DELETE FROM jobs WHERE queue = %s AND state = 'queued'"
COUNT_UNFINISHED = "SELECT count(*) FROM jobs WHERE queue = %s AND state IN ('queued', 'running')"
QUEUE_DEPTH = "SELECT queue, actor, state, count(*) FROM jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
# clock_timestamp(), not now(): the caller's connection may be in a long transaction.
OLDEST_QUEUED_AGE = """
SELECT extract(epoch FROM clock_timestamp() - min(run_at)) FROM jobs
WHERE state = 'queued' AND run_at <= clock_timestamp()
"""
SELECT_FAILED = """
SELECT id, actor, message -> 'args', message -> 'kwargs', attempts, last_error, updated_at
FROM jobs WHERE state = 'failed'
  AND (%(batch)s::text IS NULL OR (batches <> '{}' AND batches @> ARRAY[%(batch)s::text]))
ORDER BY updated_at DESC, id DESC LIMIT %(limit)s
"""
BATCH_PROGRESS = """
SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running'),
       count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed')
FROM jobs WHERE batches <> '{}' AND batches @> ARRAY[%s::text]
"""
SELECT_JOBS_OF_MESSAGE = """
SELECT id, message_id, queue, actor, state, attempts, dedup_key, batches, last_error, message
FROM jobs WHERE message_id = %s ORDER BY id
"""


class Claimed(NamedTuple):
    id: int
    attempts: int
    message: dict[str, Any]


class BatchProgress(NamedTuple):
    """How many of a batch's jobs are in each state."""

    queued: int
    running: int
    done: int
    failed: int

    @property
    def finished(self) -> bool:
        return self.queued == 0 and self.running == 0


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    actor: str
    state: str
    count: int


@dataclass(frozen=True)
class FailedJob:
    id: int
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    last_error: str | None
    failed_at: datetime


@dataclass(frozen=True)
class Job:
    id: int
    message_id: str
    queue: str
    actor: str
    state: str
    attempts: int
    dedup_key: str | None
    batches: list[str]
    last_error: str | None
    message: dict[str, Any]


def insert_job(
    conn: psycopg.Connection,
    message: dict[str, Any],
    *,
    delay_ms: int = 0,
    dedup_key: str | None = None,
    dedup_running: bool = False,
    batches: Sequence[str] = (),
    parent_id: int | None = None,
    fair_key: str = "",
) -> bool:
    """Queues a message, in the caller's transaction; False when de-duplicated."""
    row = conn.execute(
        INSERT_JOB,
        {
            "message_id": message["message_id"],
            "queue": message["queue_name"],
            "actor": message["actor_name"],
            "message": Jsonb(message),
            "delay_ms": max(0, delay_ms),
            "dedup_key": dedup_key,
            "dedup_running": dedup_running,
            "batches": list(batches),
            "parent_id": parent_id,
            "fair_key": fair_key,
        },
    ).fetchone()
    return bool(row and row[0])


def claim_jobs(
    conn: psycopg.Connection, queue: str, owner: str, limit: int, lease_s: float
) -> list[Claimed]:
    rows = conn.execute(
        CLAIM_JOBS, {"queue": queue, "owner": owner, "limit": limit, "lease_s": lease_s}
    ).fetchall()
    return [Claimed(int(r[0]), int(r[1]), r[2]) for r in rows]


def next_run_in_s(conn: psycopg.Connection, queue: str) -> float | None:
    """Seconds until the queue's next queued job is due (≤ 0: due now); None if empty."""
    row = conn.execute(NEXT_RUN_IN, (queue,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def finish_job(
    conn: psycopg.Connection,
    job_id: int,
    attempts: int,
    *,
    failed: bool,
    error: str | None = None,
    message: dict[str, Any] | None = None,
    expired_only: bool = False,
) -> bool:
    """Marks a delivery done or failed; False when it is no longer that delivery."""
    cur = conn.execute(
        FINISH_JOB,
        {
            "state": "failed" if failed else "done",
            "error": error,
            "message": None if message is None else Jsonb(message),
            "id": job_id,
            "attempts": attempts,
            "expired_only": expired_only,
        },
    )
    return cur.rowcount == 1


def requeue_job(
    conn: psycopg.Connection,
    job_id: int,
    attempts: int,
    *,
    delay_ms: int = 0,
    message: dict[str, Any] | None = None,
    error: str | None = None,
    expired_only: bool = False,
) -> str | None:
    """Puts a delivery back in the queue; returns the job's new state, None if not that delivery."""
    params = {
        "id": job_id,
        "attempts": attempts,
        "expired_only": expired_only,
        "delay_ms": max(0, delay_ms),
        "message": None if message is None else Jsonb(message),
        "error": error,
    }
    for attempt in range(REQUEUE_TRIES):
        try:
            with conn.transaction():
                row = conn.execute(REQUEUE_JOB, params).fetchone()
            return str(row[0]) if row else None
        except UniqueViolation:
            # Another requeue of the same key committed after this statement's
            # snapshot was taken; run again, and this time merge into it.
            if attempt == REQUEUE_TRIES - 1:
                raise StorageError(
                    f"job {job_id} could not go back to its queue: its de-duplication key "
                    "kept changing hands; it is delivered again when its lease expires"
                ) from None
    raise AssertionError("unreachable")


def expired_jobs(conn: psycopg.Connection, limit: int = 1000) -> list[tuple[int, int, str | None]]:
    """Running jobs whose lease has expired: (id, attempts, lease owner)."""
    return [(int(r[0]), int(r[1]), r[2]) for r in conn.execute(SELECT_EXPIRED, (limit,))]


def heartbeat(
    conn: psycopg.Connection, worker_id: str, hostname: str, pid: int, lease_s: float
) -> int:
    """Records the worker alive and extends its jobs' leases; returns how many."""
    cur = conn.execute(
        HEARTBEAT,
        {"worker": worker_id, "hostname": hostname, "pid": pid, "lease_s": lease_s},
    )
    return cur.rowcount


def remove_worker(conn: psycopg.Connection, worker_id: str) -> None:
    conn.execute(DELETE_WORKER, (worker_id,))


def remove_stale_workers(conn: psycopg.Connection, older_than_s: float) -> int:
    return conn.execute(DELETE_STALE_WORKERS, (older_than_s,)).rowcount


def purge_finished(
    conn: psycopg.Connection, done_older_than_s: float, failed_older_than_s: float
) -> int:
    """Deletes done and failed jobs older than the given ages (autocommit: one slice at a time)."""
    total = 0
    slice_size = 5000
    while True:
        deleted = conn.execute(
            PURGE_FINISHED,
            {"done_s": done_older_than_s, "failed_s": failed_older_than_s, "limit": slice_size},
        ).rowcount
        total += deleted
        if deleted < slice_size:
            return total


def delete_queued(conn: psycopg.Connection, queue: str) -> int:
    return conn.execute(DELETE_QUEUED, (queue,)).rowcount


def unfinished_count(conn: psycopg.Connection, queue: str) -> int:
    row = conn.execute(COUNT_UNFINISHED, (queue,)).fetchone()
    return int(row[0]) if row else 0


def queue_depth(conn: psycopg.Connection) -> list[QueueDepth]:
    """Jobs per queue, actor and state."""
    return [QueueDepth(r[0], r[1], r[2], int(r[3])) for r in conn.execute(QUEUE_DEPTH)]


def oldest_queued_age_s(conn: psycopg.Connection) -> float | None:
    """How long the oldest due job has waited, in seconds; None when none is due."""
    row = conn.execute(OLDEST_QUEUED_AGE).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def failed_jobs(
    conn: psycopg.Connection, *, batch: str | None = None, limit: int = 50
) -> list[FailedJob]:
    """Dead-lettered jobs, newest first, optionally only those of one batch."""
    rows = conn.execute(SELECT_FAILED, {"batch": batch, "limit": limit}).fetchall()
    return [
        FailedJob(int(r[0]), r[1], list(r[2] or []), dict(r[3] or {}), int(r[4]), r[5], r[6])
        for r in rows
    ]


def batch_progress(conn: psycopg.Connection, batch: str) -> BatchProgress:
    """(queued, running, done, failed) counts of the jobs attributed to a batch."""
    row = conn.execute(BATCH_PROGRESS, (batch,)).fetchone()
    assert row is not None
    return BatchProgress(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _job(row: Sequence[Any]) -> Job:
    return Job(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        int(row[5]),
        row[6],
        list(row[7]),
        row[8],
        row[9],
    )


def jobs_of_message(conn: psycopg.Connection, message_id: str) -> list[Job]:
    """Every row of one Dramatiq message (a de-duplicated send has none of its own)."""
    return [_job(r) for r in conn.execute(SELECT_JOBS_OF_MESSAGE, (message_id,))]
