"""`hl-analytics sync [--org ORG] [--wait] [--inline]`: ingest the tracked wallets now.

It queues one ingest of fills, one of funding payments, one of ledger updates
and one account snapshot per tracked wallet (of one org, or of all), tagged
with a new batch; every rollup those ingests cause inherits the batch (the
broker propagates it, and merges it into a de-duplicated message that absorbs a
send). A wallet whose job (of any kind) is already queued is not queued twice:
that message joins the batch instead.

With `--wait` it blocks until the batch has nothing queued or running, showing
progress (wallets done/total, fills stored, jobs by state), and exits 1 if any
job of the batch ended failed, listing them. The jobs are processed by
`hl-analytics worker` processes running anywhere on the same database; with
`--inline` (implies `--wait`) this process also runs a Dramatiq worker itself,
so a sync works with no other process at all. An inline worker takes any due
job of the pipeline, not only the batch's.

While waiting, a lost database connection (a restart) is not the sync's end:
the jobs live in the database and go on once it is back, so `--wait` reconnects
and keeps following the batch, giving up after `RECONNECT_GIVE_UP_S`.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

import dramatiq
import psycopg

from hl_core.settings import Settings
from jobs import actors
from jobs.pipeline import Pipeline, build
from storage import cursor, embedded, orgs
from storage import jobs as job_store
from storage.db import connect, errors
from storage.errors import DatabaseUnavailable, first_line

POLL_S = 0.5
REPORT_EVERY_S = 2.0
IDLE_HINT_S = 10.0
INLINE_THREADS = 4
RECONNECT_GIVE_UP_S = 300.0
FINISHED = (
    "sync finished: every ingest (fills, funding, ledger, snapshot) and rollup it caused is done"
)


@dataclass(frozen=True)
class Queued:
    batch: str
    wallets: list[orgs.Wallet]
    since: datetime
    fills_before: int


def queue_sync(p: Pipeline, conn: psycopg.Connection, org_id: uuid.UUID | None) -> Queued:
    """Queues ingest of the tracked wallets in one transaction (nothing runs before it
    commits, so the counts read in it are the baseline of the progress)."""
    batch = f"sync:{uuid.uuid4()}"
    with conn.transaction():
        wallets = orgs.tracked_wallets(conn, org_id)
        since = cursor.database_now(conn)
        before = cursor.progress(conn, [w.id for w in wallets], since).fills_stored
        # The org that waits is whom its ingests are for; a sync of every org shares
        # them as the scheduler does.
        keys: dict[str, str] | str = str(org_id) if org_id else fair_keys(conn, wallets)
        with p.broker.transaction(conn):
            actors.send_every_kind(p, [w.address for w in wallets], batch=batch, fair_keys=keys)
    return Queued(batch, wallets, since, before)


def fair_keys(conn: psycopg.Connection, wallets: Sequence[orgs.Wallet]) -> dict[str, str]:
    """address → the org its ingest is queued for (storage.orgs.fair_orgs)."""
    by_id = orgs.fair_orgs(conn, [w.id for w in wallets])
    return {w.address: str(by_id[w.id]) for w in wallets if w.id in by_id}


def _line(done: int, total: int, fills: int, progress: job_store.BatchProgress) -> str:
    return (
        f"wallets {done}/{total} · fills stored {fills:,} · jobs: {progress.queued} queued, "
        f"{progress.running} running, {progress.done} done, {progress.failed} failed"
    )


def _reconnect(url: str, stream: TextIO, why: BaseException) -> psycopg.Connection:
    """A new connection once the database is back; DatabaseUnavailable after the give-up time."""
    stream.write(f"lost the database ({first_line(why)}); the jobs wait in it, reconnecting …\n")
    stream.flush()
    deadline = time.monotonic() + RECONNECT_GIVE_UP_S
    while True:
        try:
            return connect(url, autocommit=True, application_name="hl-analytics-sync")
        except DatabaseUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(POLL_S * 2)


def wait_for(
    conn: psycopg.Connection,
    queued: Queued,
    *,
    out: TextIO | None = None,
    url: str | None = None,
) -> job_store.BatchProgress:
    """Blocks until the batch is finished, printing progress; returns its final counts.

    With `url`, a lost connection is replaced (see the module docstring); `conn` is
    then left closed, and the caller opens another for anything after."""
    stream = out or sys.stdout
    given = conn
    wallet_ids = [w.id for w in queued.wallets]
    last_report = 0.0
    started = time.monotonic()
    hinted = False
    while True:
        try:
            with errors():
                progress = job_store.batch_progress(conn, queued.batch)
                mine = cursor.progress(conn, wallet_ids, queued.since)
        except DatabaseUnavailable as exc:
            if url is None:
                raise
            conn.close()
            conn = _reconnect(url, stream, exc)
            continue
        line = _line(
            min(mine.finished, len(wallet_ids)),
            len(wallet_ids),
            mine.fills_stored - queued.fills_before,
            progress,
        )
        now = time.monotonic()
        if progress.finished or now - last_report >= REPORT_EVERY_S:
            stream.write(line + "\n")
            stream.flush()
            last_report = now
        if progress.finished:
            if conn is not given:
                conn.close()  # a replacement of ours
            return progress
        idle = progress.running == 0 and progress.done == 0 and progress.failed == 0
        if idle and not hinted and now - started >= IDLE_HINT_S:
            stream.write(
                f"nothing of this sync has started after {IDLE_HINT_S:.0f} s: is "
                "`hl-analytics worker` running on this database? (or sync with --inline)\n"
            )
            hinted = True
        time.sleep(POLL_S)


@errors()
def run_sync(settings: Settings, org_id: uuid.UUID | None, *, wait: bool, inline: bool) -> int:
    url = embedded.database_url(settings)
    p = build(settings, url, pool_size=INLINE_THREADS + 1)
    conn = connect(url, autocommit=True, application_name="hl-analytics-sync")
    worker: dramatiq.Worker | None = None
    try:
        if org_id is not None:
            orgs.get_org(conn, org_id)
        queued = queue_sync(p, conn, org_id)
        scope = f"organisation {org_id}" if org_id else "all organisations"
        print(
            f"queued ingest of {len(queued.wallets)} wallet(s) of {scope} (batch {queued.batch})",
            flush=True,
        )
        if not (wait or inline):
            print("run `hl-analytics worker` to process it; add --wait to follow it")
            return 0
        if inline:
            # What Dramatiq's runner does in a worker process before its worker starts.
            p.broker.emit_after("process_boot")
            worker = dramatiq.Worker(p.broker, worker_threads=INLINE_THREADS)
            worker.start()
        progress = wait_for(conn, queued, url=url)
        if conn.closed:
            conn = connect(url, autocommit=True, application_name="hl-analytics-sync")
        if progress.failed:
            print(f"{progress.failed} job(s) of this sync failed:", file=sys.stderr)
            for job in job_store.failed_jobs(conn, batch=queued.batch, limit=20):
                print(f"  {job.actor}{tuple(job.args)}: {job.last_error}", file=sys.stderr)
            print(
                "see each wallet's last error with `hl-analytics status`; "
                "fix the cause and run the sync again",
                file=sys.stderr,
            )
            return 1
        print(FINISHED)
        return 0
    finally:
        if worker is not None:
            worker.stop()
        conn.close()
        p.close()
