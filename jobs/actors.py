"""The bodies of the pipeline's actors: ingest → wallet-days → org-day.

`ingest_funding(address)` and `ingest_ledger(address)` store a wallet's new
funding payments and non-funding ledger updates (jobs.ingest_paged); the days
whose numbers they change are made pending and rolled up exactly as an ingest
page's new fills' days are. `snapshot_positions(address)`
stores a snapshot of its account (jobs.snapshot); it causes no rollup.

Each orchestrates; the work happens in SQL (storage.rollups) or in
jobs.ingest. Follow-up work is recorded on the connection and inside the
transaction whose commit makes it necessary, so a follow-up exists if and
only if the data it needs was committed:

- an ingest page adds its new (wallet, day) pairs to `rollup_pending` and
  sends `rollup_wallet_days(day)`, de-duplicated per day while queued
  (`rollup_wallet_days:<day>`): a burst of ingests touching a day causes one
  job, which drains the day's pending rows in chunks of
  `storage.rollups.PENDING_CHUNK`, sending itself again while rows remain;
- each chunk sends `rollup_global_day` for every org tracking its wallets,
  with a short delay and de-duplicated per org-day
  (`rollup_global_day:<org>:<day>`), so one chunk causes one org-day rollup.

A rollup that is already running when new data commits is not merged: the
new send queues a second job, which sees the new pending rows.
(Messages of the retired one-job-per-wallet `rollup_wallet_day` were turned
into pending wallet-days by migration 0009.)

`resolve_markets(coins)` (sent by the scheduler for coins whose quote token is
still unknown, de-duplicated while queued) asks Hyperliquid's metadata again;
coins it resolves have every wallet-day holding their fills marked pending and
those days' `rollup_wallet_days` sent, in the transaction that resolved them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import psycopg

from hl_core.telemetry import worker_metrics
from jobs.hl_client import HyperliquidClient
from jobs.ingest import IngestReport
from jobs.ingest import ingest_wallet as run_ingest
from jobs.ingest_paged import LEDGER_KIND, PagedReport, ingest_paged
from jobs.ingest_paged import ingest_funding as run_funding
from jobs.markets import CoinResolver
from jobs.snapshot import SnapshotReport, snapshot_wallet
from storage import orgs, rollups
from storage.db import borrow
from storage.orgs import Wallet

if TYPE_CHECKING:
    from jobs.pipeline import Pipeline

log = logging.getLogger(__name__)

# Delay of org-day rollups: the wallet rollups of one ingest (or of a burst of
# ingests) that land within it are merged into one org-day rollup per org-day.
GLOBAL_ROLLUP_DELAY_MS = 1_000


def ingest_dedup_key(address: str) -> str:
    return f"ingest_wallet:{address}"


def _send_each(
    actor: Any,
    addresses: Iterable[str],
    dedup_key: Callable[[str], str],
    batch: str | None,
    fair_keys: Mapping[str, str] | str,
) -> None:
    """Queues `actor` for each wallet, merged with one already queued (its dedup key);
    inside a transaction block of the broker the sends join the caller's transaction.
    `fair_keys` says whom each is for (an org id, or one for all): the queue shares its
    turns between them."""
    for address in addresses:
        options: dict[str, Any] = {"dedup_key": dedup_key(address)}
        if batch:
            options["batch"] = batch
        key = fair_keys if isinstance(fair_keys, str) else fair_keys.get(address, "")
        if key:
            options["fair_key"] = key
        actor.send_with_options(args=(address,), **options)


def send_ingests(
    p: Pipeline,
    addresses: Iterable[str],
    *,
    batch: str | None = None,
    fair_keys: Mapping[str, str] | str = "",
) -> None:
    """Queues ingest of each wallet's fills."""
    _send_each(p.ingest_wallet, addresses, ingest_dedup_key, batch, fair_keys)


def funding_dedup_key(address: str) -> str:
    return f"ingest_funding:{address}"


def send_funding_ingests(
    p: Pipeline,
    addresses: Iterable[str],
    *,
    batch: str | None = None,
    fair_keys: Mapping[str, str] | str = "",
) -> None:
    """Queues ingest of each wallet's funding payments, as `send_ingests` does fills."""
    _send_each(p.ingest_funding, addresses, funding_dedup_key, batch, fair_keys)


def ledger_dedup_key(address: str) -> str:
    return f"ingest_ledger:{address}"


def send_ledger_ingests(
    p: Pipeline,
    addresses: Iterable[str],
    *,
    batch: str | None = None,
    fair_keys: Mapping[str, str] | str = "",
) -> None:
    """Queues ingest of each wallet's non-funding ledger updates."""
    _send_each(p.ingest_ledger, addresses, ledger_dedup_key, batch, fair_keys)


def snapshot_dedup_key(address: str) -> str:
    return f"snapshot_positions:{address}"


def send_snapshots(
    p: Pipeline,
    addresses: Iterable[str],
    *,
    batch: str | None = None,
    fair_keys: Mapping[str, str] | str = "",
) -> None:
    """Queues an account snapshot of each wallet."""
    _send_each(p.snapshot_positions, addresses, snapshot_dedup_key, batch, fair_keys)


def send_every_kind(
    p: Pipeline,
    addresses: Sequence[str],
    *,
    batch: str | None = None,
    fair_keys: Mapping[str, str] | str = "",
) -> None:
    """Queues everything a wallet's numbers need: fills, funding, ledger, a snapshot."""
    for send in (send_ingests, send_funding_ingests, send_ledger_ingests, send_snapshots):
        send(p, addresses, batch=batch, fair_keys=fair_keys)


def send_global_rollups(
    p: Pipeline,
    conn: psycopg.Connection,
    org_ids: Sequence[uuid.UUID],
    days: Iterable[date],
    *,
    batches: Sequence[str] = (),
) -> None:
    """Queues the org-days' rollups on `conn`, in sorted order (two senders in one
    day wait for each other's de-duplication keys in the same order: no deadlock)."""
    options: dict[str, Any] = {"batches": list(batches)} if batches else {}
    with p.broker.transaction(conn):
        for day in sorted(set(days)):
            for org_id in sorted(set(org_ids)):
                p.rollup_global_day.send_with_options(
                    args=(str(org_id), day.isoformat()),
                    delay=GLOBAL_ROLLUP_DELAY_MS,
                    dedup_key=f"rollup_global_day:{org_id}:{day.isoformat()}",
                    **options,
                )


def send_wallet_days_rollups(
    p: Pipeline, conn: psycopg.Connection, days: Iterable[date], *, delay: int = 0
) -> None:
    """Queues `rollup_wallet_days` of each day on `conn`, merged with one already queued."""
    with p.broker.transaction(conn):
        for day in sorted(set(days)):
            p.rollup_wallet_days.send_with_options(
                args=(day.isoformat(),),
                delay=delay,
                dedup_key=f"rollup_wallet_days:{day.isoformat()}",
            )


def queue_wallet_days(
    p: Pipeline, conn: psycopg.Connection, wallet_id: int, days: Iterable[date]
) -> None:
    """What an ingest page's new fills make necessary, in the page's transaction: the
    wallet-days pending (with the sync batches of the ingest job running, if any), and
    the days' `rollup_wallet_days` jobs. Rows first, messages second: the order every
    sender keeps, so an ingest and a rollup of one day never wait for each other in a
    cycle (a rollup's sends come after its take of rows)."""
    rollups.add_pending(conn, wallet_id, days, job_id=p.broker.current_job_id())
    send_wallet_days_rollups(p, conn, days)


def ingest_wallet(p: Pipeline, address: str) -> None:
    address = orgs.normalize_address(address)
    with borrow(p.pool) as conn:
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


def ingest_funding(p: Pipeline, address: str) -> None:
    """A wallet's new funding payments; their days are rolled up like new fills' days."""
    address = orgs.normalize_address(address)
    with borrow(p.pool) as conn:
        (wallet,) = orgs.upsert_wallets(conn, [address])
        report = asyncio.run(_ingest_funding(p, conn, wallet))
    log.info(
        "ingested funding of %s: %d payment(s) fetched in %d page(s), %d new, %d rejected",
        address,
        report.fetched,
        report.pages,
        report.stored,
        report.rejected,
        extra={"action": "funding_ingest_done", "wallet": address, "stored": report.stored},
    )


async def _ingest_funding(p: Pipeline, conn: psycopg.Connection, wallet: Wallet) -> PagedReport:
    def on_new_days(conn: psycopg.Connection, wallet: Wallet, days: frozenset[date]) -> None:
        queue_wallet_days(p, conn, wallet.id, days)

    async with HyperliquidClient.from_settings(p.settings, p.database_url) as client:
        return await run_funding(conn, client, wallet, on_new_days=on_new_days)


def ingest_ledger(p: Pipeline, address: str) -> None:
    """A wallet's new non-funding ledger updates; the days of new deposits and
    withdrawals are rolled up like new fills' days."""
    address = orgs.normalize_address(address)
    with borrow(p.pool) as conn:
        (wallet,) = orgs.upsert_wallets(conn, [address])
        report = asyncio.run(_ingest_ledger(p, conn, wallet))
    log.info(
        "ingested the ledger of %s: %d update(s) fetched in %d page(s), %d new, %d rejected",
        address,
        report.fetched,
        report.pages,
        report.stored,
        report.rejected,
        extra={"action": "ledger_ingest_done", "wallet": address, "stored": report.stored},
    )


async def _ingest_ledger(p: Pipeline, conn: psycopg.Connection, wallet: Wallet) -> PagedReport:
    def on_new_days(conn: psycopg.Connection, wallet: Wallet, days: frozenset[date]) -> None:
        queue_wallet_days(p, conn, wallet.id, days)

    async with HyperliquidClient.from_settings(p.settings, p.database_url) as client:
        return await ingest_paged(
            conn,
            lambda address, start: client.ledger_pages(address, start),
            LEDGER_KIND,
            wallet,
            on_new_days=on_new_days,
        )


def snapshot_positions(p: Pipeline, address: str) -> None:
    """A snapshot of the wallet's positions, balances and account value (jobs.snapshot)."""
    address = orgs.normalize_address(address)
    with borrow(p.pool) as conn:
        (wallet,) = orgs.upsert_wallets(conn, [address])
        report = asyncio.run(_snapshot(p, conn, wallet))
    log.info(
        "snapshot of %s: %s",
        address,
        "kept the previous one" if report.totals is None else "stored",
        extra={"action": "snapshot_done", "wallet": address},
    )


async def _snapshot(p: Pipeline, conn: psycopg.Connection, wallet: Wallet) -> SnapshotReport:
    async with HyperliquidClient.from_settings(p.settings, p.database_url) as client:
        return await snapshot_wallet(
            conn, client, wallet, usd_tokens=p.settings.hyperliquid_usd_tokens
        )


def reprice(p: Pipeline, conn: psycopg.Connection, coins: list[str]) -> None:
    """The coins' pricing changed: every wallet-day holding their fills is rolled up again."""
    days = rollups.add_pending_for_coins(conn, coins)
    send_wallet_days_rollups(p, conn, days)
    log.info(
        "%d coin(s) resolved: %d day(s) to roll up again",
        len(coins),
        len(days),
        extra={"action": "markets_repriced", "coins": coins[:20], "days": len(days)},
    )


def resolver(p: Pipeline, client: HyperliquidClient) -> CoinResolver:
    return CoinResolver(p.catalog, client, lambda conn, coins: reprice(p, conn, coins))


async def _ingest(p: Pipeline, conn: psycopg.Connection, wallet: Wallet) -> IngestReport:
    def on_new_days(conn: psycopg.Connection, wallet: Wallet, days: frozenset[date]) -> None:
        queue_wallet_days(p, conn, wallet.id, days)

    async with HyperliquidClient.from_settings(p.settings, p.database_url) as client:
        client.dexes = await _extra_dexes(p, client)
        return await run_ingest(
            conn, client, wallet, on_new_days=on_new_days, markets=resolver(p, client)
        )


async def _extra_dexes(p: Pipeline, client: HyperliquidClient) -> list[str]:
    """HYPERLIQUID_DEXES: the dexes whose fills are also asked for one by one."""
    wanted = p.settings.hyperliquid_dexes or ()
    if wanted == ("all",):
        return await p.catalog.dex_names(client)
    return list(wanted)


def resolve_markets(p: Pipeline, coins: list[str]) -> None:
    with borrow(p.pool) as conn:
        plan_coins = p.catalog.unknown(conn, coins)
        repriced = asyncio.run(_resolve(p, conn, plan_coins))
    log.info(
        "resolved markets: %d asked, %d repriced",
        len(plan_coins),
        len(repriced),
        extra={"action": "resolve_markets", "coins": len(plan_coins)},
    )


async def _resolve(p: Pipeline, conn: psycopg.Connection, coins: list[str]) -> list[str]:
    async with HyperliquidClient.from_settings(p.settings, p.database_url) as client:
        markets = resolver(p, client)
        plan = await p.catalog.plan(client, coins)
        with conn.transaction():
            repriced = markets.store(conn, plan)
        markets.remember(plan)
        return repriced


# While another job holds some of the day's rows, a job that found nothing else to
# take looks again after this delay: it must not end (and let its sync batch count as
# finished) before the rows it skipped are committed by their holder.
BUSY_DAY_RETRY_MS = 200


def rollup_wallet_days(p: Pipeline, day: str) -> None:
    """Rebuilds one chunk of the day's pending wallet-days, in one transaction with the
    org-day rollups it causes and, while rows remain, its own next run."""
    the_day = date.fromisoformat(day)
    started = time.perf_counter()
    with borrow(p.pool) as conn, conn.transaction():
        done = rollups.rollup_pending_chunk(
            conn, the_day, usd_tokens=p.settings.hyperliquid_usd_tokens
        )
        if done.org_ids:
            send_global_rollups(p, conn, done.org_ids, [the_day], batches=done.batches)
        if done.more:
            send_wallet_days_rollups(
                p, conn, [the_day], delay=0 if done.full else BUSY_DAY_RETRY_MS
            )
    worker_metrics().rollup_seconds.labels("wallet_days").observe(time.perf_counter() - started)
    log.info(
        "rolled up %d wallet-day(s) of %s%s",
        len(done.wallet_ids),
        day,
        ", more pending" if done.more else "",
        extra={"action": "rollup_wallet_days", "day": day, "wallets": len(done.wallet_ids)},
    )


def rollup_global_day(p: Pipeline, org_id: str, day: str) -> None:
    started = time.perf_counter()
    with borrow(p.pool) as conn, conn.transaction():
        rollups.relax_commit(conn)
        rollups.rebuild_org_day(conn, orgs.parse_org_id(org_id), date.fromisoformat(day))
    worker_metrics().rollup_seconds.labels("org_day").observe(time.perf_counter() - started)
