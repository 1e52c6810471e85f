"""Ingest of one wallet: new fills from Hyperliquid into `hl_fills_raw`, exactly once.

A plain function, testable without the broker. The guarantees:

- It resumes from the wallet's cursor minus a 10-minute overlap, so fills that
  Hyperliquid reports late (with a time slightly in the past) are still picked
  up; re-fetched fills are stored once (storage.fills is idempotent).
- Each page is one transaction: its fills, its rejected fills (quarantined),
  the cursor move it justifies, and the follow-up work for the days that
  received new fills (`on_new_days`, which queues rollups on the same
  connection). A crash between pages loses nothing: the cursor is behind.
- Two ingests of one wallet never run at once: a per-wallet advisory lock is
  held for the whole run; a second run waits for it, then re-reads the cursor.
- The outcome (last success, or last error) is recorded on the cursor.
- With `markets`, the coins of each page that are not resolved yet are looked
  up in Hyperliquid's metadata before the page is stored, and recorded with
  it, so the page's rollups price it (jobs.markets); metadata that cannot be
  had leaves the coins unpriced and never stops the page from being stored.
- A pass that starts from 0 (the wallet's first, or a re-read) and is never
  truncated read the wallet's whole history: the cursor records from which day
  it is complete (storage.cursor.mark_complete_from_start).
- A wallet flagged for a history re-read (migration 0008: passes of earlier
  releases ended at the first short page and may have missed fills) starts
  from 0 once; its success clears the flag, and the days that receive the
  missing fills are queued for rollup like any other new fills.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import psycopg

from jobs.errors import JobError
from jobs.markets import CoinResolver
from storage import cursor, fills, locks
from storage.errors import first_line
from storage.fills import Fill
from storage.orgs import Wallet

OVERLAP_MS = 10 * 60 * 1000
LOCK_WAIT_S = 60.0


class FillPageLike(Protocol):
    """What ingest needs of a page of `jobs.hl_client.HyperliquidClient.fill_pages`."""

    @property
    def fills(self) -> Sequence[Fill]: ...
    @property
    def rejected(self) -> Sequence[tuple[object, str]]: ...
    @property
    def complete_until_ms(self) -> int: ...
    @property
    def truncated(self) -> bool: ...


class FillSource(Protocol):
    def fill_pages(
        self, address: str, start_ms: int, end_ms: int | None = None
    ) -> AsyncIterator[FillPageLike]: ...


# Called inside each page's transaction with the UTC days that received new fills.
NewDays = Callable[[psycopg.Connection, Wallet, frozenset[date]], None]


class IngestBusy(JobError):
    """Another ingest of this wallet held its lock for too long; this one will be retried."""


@dataclass(frozen=True)
class IngestReport:
    wallet: Wallet
    start_ms: int
    pages: int
    fetched: int
    stored: int
    rejected: int
    new_days: frozenset[date]
    # The pass re-read the whole reachable history for the upgrade (see the module doc).
    reread: bool = False


async def ingest_wallet(
    conn: psycopg.Connection,
    source: FillSource,
    wallet: Wallet,
    *,
    on_new_days: NewDays,
    markets: CoinResolver | None = None,
    overlap_ms: int = OVERLAP_MS,
    lock_wait_s: float = LOCK_WAIT_S,
) -> IngestReport:
    """Fetches and stores the wallet's new fills; `conn` must be in autocommit mode."""
    if not conn.autocommit:
        raise ValueError(
            "ingest_wallet manages its own transactions: pass an autocommit connection"
        )
    await _lock(conn, wallet, lock_wait_s)
    try:
        try:
            report = await _run(conn, source, wallet, on_new_days, markets, overlap_ms)
        except Exception as exc:
            if not conn.closed and not conn.broken:
                with conn.transaction():
                    cursor.record_error(conn, wallet.id, f"{type(exc).__name__}: {first_line(exc)}")
            raise
        with conn.transaction():
            cursor.record_success(conn, wallet.id, reread=report.reread)
        return report
    finally:
        if not conn.closed and not conn.broken:
            locks.unlock_wallet(conn, wallet.id)


async def _lock(conn: psycopg.Connection, wallet: Wallet, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not locks.try_lock_wallet(conn, wallet.id):
        if time.monotonic() >= deadline:
            raise IngestBusy(
                f"another ingest of {wallet.address} held its lock for over {wait_s:.0f} s"
            )
        await asyncio.sleep(0.2)


async def _run(
    conn: psycopg.Connection,
    source: FillSource,
    wallet: Wallet,
    on_new_days: NewDays,
    markets: CoinResolver | None,
    overlap_ms: int,
) -> IngestReport:
    current = cursor.get_cursor(conn, wallet.id)
    synced = current.synced_until_ms if current else None
    reread = current is not None and current.reread_pending
    start_ms = 0 if synced is None or reread else max(0, synced - overlap_ms)
    pages = fetched = stored = rejected = 0
    new_days: set[date] = set()
    async for page in source.fill_pages(wallet.address, start_ms):
        pages += 1
        fetched += len(page.fills)
        rejected += len(page.rejected)
        coins = {f.coin for f in page.fills}
        plan = await markets.plan_for(conn, coins) if markets else None
        with conn.transaction():
            if markets is not None:
                markets.store(conn, plan)
            result = fills.insert_fills(conn, wallet.id, page.fills)
            for raw, reason in page.rejected:
                fills.quarantine(conn, wallet.id, raw, reason)
            cursor.advance(
                conn,
                wallet.id,
                synced_until_ms=page.complete_until_ms,
                last_fill_ms=max((f.time for f in page.fills), default=None),
                stored=result.inserted,
                truncated=page.truncated,
            )
            if result.new_per_day:
                days = frozenset(result.new_per_day)
                on_new_days(conn, wallet, days)
                new_days |= days
        if markets is not None:
            markets.remember(plan)
        stored += result.inserted
    if start_ms == 0:
        with conn.transaction():
            cursor.mark_complete_from_start(conn, wallet.id)
    return IngestReport(
        wallet, start_ms, pages, fetched, stored, rejected, frozenset(new_days), reread
    )
