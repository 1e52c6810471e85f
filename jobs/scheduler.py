"""`hl-analytics scheduler`: keeps every tracked wallet fresh, runs the housekeeping.

Every tick (`--interval`, 5 s by default) one scheduler — whichever takes the
tick's transaction-level advisory lock; others skip the tick — reads every
tracked wallet's activity, picks the due ones under jobs.polling's policy,
marks them scheduled and queues their ingest, all in one transaction. The due
wallets are sent interleaved by org, each for the org that tracks it with the
fewest wallets (a wallet several orgs track is one ingest), and the ingest queue
hands out turns round robin between orgs: one org's backfill of thousands of
wallets delays another org's ingests by about one of its own turns each. So with
several scheduler processes each due wallet is still queued once; the ingest's
de-duplication key would also merge a second send into the queued one.

While the node source (`hl-analytics node-ingest`) advances, wallets it covers
(jobs.polling.not_covered_by_node) are not polled for fills: it brings them
within seconds, without spending the request budget. It does not cover a
wallet's first pass over its reachable history, nor a history re-read. When
it has not advanced for NODE_STALE_AFTER_S seconds, every wallet is polled again.

After the fills, the other data kinds (funding payments) are planned in the same
budget and the same transaction by jobs.plan_kinds.

Coins whose quote token is still unknown (metadata failed or did not know them,
or an upgrade recorded them) are sent to one `resolve_markets` job per tick,
each coin at most every `storage.markets.RETRY_AFTER`.

Housekeeping, by the leader of a tick: monthly fill partitions are ensured
every hour (storage.fills.ensure_partitions), finished jobs are purged and
expired leases re-delivered every minute (the broker's own routines; workers
do the same, this covers the time when none runs). The leader of each tick also
keeps the day totals through today's UTC day (storage.day_totals): the first
tick after midnight writes the new day's rows, the others nothing; it moves the
standing ranks (storage.ranks) to the new day the same way; then it brings stale
day totals up to date for at most FRESHEN_FOR_S.

A lost database (a restart) is logged and waited out: the next tick reconnects.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC
from types import FrameType

import psycopg
from dramatiq.errors import ConnectionClosed

from hl_core.errors import HLAnalyticsError
from hl_core.settings import Settings
from jobs import actors, plan_kinds, polling
from jobs.errors import check_positive
from jobs.node_source import SOURCE as NODE_SOURCE
from jobs.pipeline import Pipeline, build
from storage import (
    cursor,
    day_totals,
    embedded,
    fills,
    locks,
    markets,
    node_position,
    orgs,
    ranks,
)
from storage.db import connect, errors
from storage.errors import DatabaseUnavailable, first_line

log = logging.getLogger(__name__)

PARTITIONS_EVERY_S = 3600.0
HOUSEKEEPING_EVERY_S = 60.0
# How long a tick may spend on stale day totals (a batch of wallets takes well under it).
FRESHEN_FOR_S = 2.0
APP_NAME = "hl-analytics-scheduler"


class SchedulerOptionInvalid(HLAnalyticsError):
    """A scheduler option is out of range."""


@dataclass(frozen=True)
class Tick:
    led: bool
    tracked: int
    queued: int
    stretch: float


def tick(p: Pipeline, conn: psycopg.Connection) -> Tick:
    """One scheduling pass; `conn` must be in autocommit mode (the tick is one transaction)."""
    with conn.transaction():
        if not locks.try_lead_tick(conn):
            return Tick(False, 0, 0, 1.0)
        rows = cursor.schedule_rows(conn)
        if node_position.is_live(conn, NODE_SOURCE, p.settings.node_stale_after_s):
            rows = polling.not_covered_by_node(rows)
        result = polling.plan(rows, cursor.database_now(conn), p.settings.hyperliquid_rps)
        owners = orgs.fair_orgs(conn, [r.wallet_id for r in result.due])
        due = polling.interleave(result.due, lambda r: str(owners.get(r.wallet_id, "")))
        cursor.mark_scheduled(conn, [r.wallet_id for r in due])
        unresolved = markets.due_unresolved(conn)
        markets.mark_checked(conn, unresolved)
        with p.broker.transaction(conn):
            actors.send_ingests(
                p,
                [r.address for r in due],
                fair_keys={
                    r.address: str(owners[r.wallet_id]) for r in due if r.wallet_id in owners
                },
            )
            if unresolved:
                p.resolve_markets.send_with_options(args=(unresolved,), dedup_key="resolve_markets")
        # Other data kinds (funding), after the fills, in the same budget: jobs.plan_kinds.
        plan_kinds.schedule_kinds(p, conn, cursor.database_now(conn))
    return Tick(True, len(rows), len(result.due), result.stretch)


def ensure_partitions(conn: psycopg.Connection) -> int:
    with conn.transaction():
        return fills.ensure_partitions(conn)


def keep_day_totals(conn: psycopg.Connection) -> int:
    """Keeps the day totals (storage.day_totals) through today's UTC day: a new day's
    rows the first tick after midnight, nothing the other ticks; moves the standing ranks
    to today the same way (storage.ranks.shift). Then freshens wallets
    whose day totals went stale (late days rolled up), for at most FRESHEN_FOR_S. Returns
    the rows the new day wrote."""
    with conn.transaction():
        today = cursor.database_now(conn).astimezone(UTC).date()
    written = 0
    for what, action, keep in (
        ("day totals kept", "day_totals", day_totals.extend_day_totals),
        ("standing ranks moved", "ranks_shift", ranks.shift),
    ):
        with conn.transaction():
            rows = keep(conn, today)
        if rows:
            log.info("%s through %s (%d row(s))", what, today, rows, extra={"action": action})
        written += rows
    freshened = day_totals.freshen_all(conn, time.monotonic() + FRESHEN_FOR_S)
    if freshened:
        log.info(
            "day totals of %d wallet(s) brought up to date",
            freshened,
            extra={"action": "day_totals_freshen", "wallets": freshened},
        )
    return written


def housekeeping(p: Pipeline) -> tuple[int, int]:
    """Re-delivers expired leases and purges finished jobs; returns (requeued, purged)."""
    return p.broker.requeue_expired(), p.broker.purge_finished(p.broker.keep_done_s)


def run(p: Pipeline, interval_s: float, stop: threading.Event, *, once: bool = False) -> None:
    """Ticks until `stop` is set; a lost database (a restart) is waited out, not fatal."""
    conn: psycopg.Connection | None = None
    last_partitions = last_housekeeping = float("-inf")
    try:
        while True:
            try:
                with errors():
                    if conn is None or conn.closed:
                        conn = connect(p.database_url, autocommit=True, application_name=APP_NAME)
                    last_partitions, last_housekeeping = _step(
                        p, conn, last_partitions, last_housekeeping
                    )
            except (DatabaseUnavailable, ConnectionClosed) as exc:
                log.warning(
                    "database unavailable (%s); retrying in %.0f s",
                    first_line(exc),
                    interval_s,
                    extra={"action": "scheduler_db_unavailable"},
                )
                if conn is not None:
                    conn.close()
                if once:
                    raise
            if once or stop.wait(interval_s):
                return
    finally:
        if conn is not None:
            conn.close()


def _step(
    p: Pipeline, conn: psycopg.Connection, last_partitions: float, last_housekeeping: float
) -> tuple[float, float]:
    now = time.monotonic()
    if now - last_partitions >= PARTITIONS_EVERY_S:
        created = ensure_partitions(conn)
        last_partitions = now
        if created:
            log.info("created %d fill partition(s)", created, extra={"action": "partitions"})
    result = tick(p, conn)
    if result.led:
        keep_day_totals(conn)
    if result.led and now - last_housekeeping >= HOUSEKEEPING_EVERY_S:
        requeued, purged = housekeeping(p)
        last_housekeeping = now
        if requeued or purged:
            log.info(
                "housekeeping: %d expired lease(s) re-delivered, %d finished job(s) purged",
                requeued,
                purged,
                extra={"action": "housekeeping"},
            )
    if result.queued:
        log.info(
            "queued ingest of %d of %d tracked wallet(s) (intervals ×%.2f for the budget)",
            result.queued,
            result.tracked,
            result.stretch,
            extra={"action": "schedule", "queued": result.queued},
        )
    return last_partitions, last_housekeeping


def run_scheduler(settings: Settings, *, interval_s: float, once: bool) -> int:
    check_positive("interval", interval_s, SchedulerOptionInvalid)
    url = embedded.database_url(settings)
    p = build(settings, url, pool_size=2)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"scheduler: a tick every {interval_s:g} s; SIGTERM or Ctrl-C stops", flush=True)
    try:
        run(p, interval_s, stop, once=once)
    finally:
        p.close()
    return 0
