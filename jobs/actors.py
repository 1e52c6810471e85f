"""The bodies of the pipeline's three actors: ingest → wallet-day → org-day.

Each orchestrates; the work happens in SQL (storage.rollups) or in
jobs.ingest. Follow-up messages are sent on the connection and inside the
transaction whose commit makes them necessary, so a follow-up exists if and
only if the data it needs was committed. De-duplication keys merge repeats:

- `rollup_wallet_day:<address>:<day>` — several pages or ingests touching a
  wallet-day while its rollup is queued cause one rollup;
- `rollup_global_day:<org>:<day>` — sent with a short delay, so a burst of
  wallet rollups causes one org-day rollup per org-day.

A rollup that is already running when new data commits is not merged: the
new send queues a second one, which sees the new data.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import psycopg

from hl_analytics.telemetry import worker_metrics
from jobs.hl_client import HyperliquidClient
from jobs.ingest import IngestReport
from jobs.ingest import ingest_wallet as run_ingest
from storage import orgs, rollups
from storage.orgs import Wallet

if TYPE_CHECKING:
    from jobs.app import Pipeline

log = logging.getLogger(__name__)

# Delay of org-day rollups: the wallet rollups of one ingest (or of a burst of
# ingests) that land within it are merged into one org-day rollup per org-day.
GLOBAL_ROLLUP_DELAY_MS = 1_000


def ingest_dedup_key(address: str) -> str:
    return f"ingest_wallet:{address}"


def send_ingests(p: Pipeline, addresses: Iterable[str], *, batch: str | None = None) -> None:
    """Queues ingest of each wallet (merged with one already queued); inside a transaction
    block of `p.broker` the sends join the caller's transaction."""
    for address in addresses:
        options: dict[str, Any] = {"dedup_key": ingest_dedup_key(address)}
        if batch:
            options["batch"] = batch
        p.ingest_wallet.send_with_options(args=(address,), **options)


def send_global_rollups(
    p: Pipeline, conn: psycopg.Connection, org_ids: Sequence[uuid.UUID], days: Iterable[date]
) -> None:
    with p.broker.transaction(conn):
        for day in sorted(set(days)):
            for org_id in org_ids:
                p.rollup_global_day.send_with_options(
                    args=(str(org_id), day.isoformat()),
                    delay=GLOBAL_ROLLUP_DELAY_MS,
                    dedup_key=f"rollup_global_day:{org_id}:{day.isoformat()}",
                )


def ingest_wallet(p: Pipeline, address: str) -> None:
    address = orgs.normalize_address(address)
    with p.pool.connection() as conn:
        (wallet,) = orgs.upsert_wallets(conn, [address])
        report = asyncio.run(_ingest(p, conn, wallet))
    metrics = worker_metrics()
    metrics.fills_ingested.inc(report.stored)
    metrics.fills_quarantined.inc(report.rejected)
    log.info(
        "ingested %s: %d fills fetched in %d page(s), %d new, %d day(s) to roll up",
        address,
        report.fetched,
        report.pages,
        report.stored,
        len(report.new_days),
        extra={"action": "ingest_done", "wallet": address, "stored": report.stored},
    )


async def _ingest(p: Pipeline, conn: psycopg.Connection, wallet: Wallet) -> IngestReport:
    def on_new_days(conn: psycopg.Connection, wallet: Wallet, days: frozenset[date]) -> None:
        with p.broker.transaction(conn):
            for day in sorted(days):
                p.rollup_wallet_day.send_with_options(
                    args=(wallet.address, day.isoformat()),
                    dedup_key=f"rollup_wallet_day:{wallet.address}:{day.isoformat()}",
                )

    async with HyperliquidClient.from_settings(p.settings, p.database_url) as client:
        return await run_ingest(conn, client, wallet, on_new_days=on_new_days)


def rollup_wallet_day(p: Pipeline, address: str, day: str) -> None:
    address = orgs.normalize_address(address)
    the_day = date.fromisoformat(day)
    started = time.perf_counter()
    with p.pool.connection() as conn, conn.transaction():
        done = rollups.rollup_wallet_day(conn, address, the_day)
        if done is not None:
            send_global_rollups(p, conn, done.org_ids, [the_day])
    worker_metrics().rollup_seconds.labels("wallet_day").observe(time.perf_counter() - started)


def rollup_global_day(p: Pipeline, org_id: str, day: str) -> None:
    started = time.perf_counter()
    with p.pool.connection() as conn, conn.transaction():
        rollups.relax_commit(conn)
        rollups.rebuild_org_day(conn, orgs.parse_org_id(org_id), date.fromisoformat(day))
    worker_metrics().rollup_seconds.labels("org_day").observe(time.perf_counter() - started)
