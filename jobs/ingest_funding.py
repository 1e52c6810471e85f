"""Ingest of one wallet's funding payments into `hl_funding`, exactly once.

The same guarantees as the fills' ingest (jobs.ingest), for `userFunding`:

- it resumes from the wallet's funding cursor (`hl_kind_cursor`, kind
  `funding`) minus a 10-minute overlap; re-fetched payments are stored once
  (storage.funding is idempotent on wallet, time and coin);
- each page is one transaction: its payments, its rejected entries
  (quarantined with their reason), the cursor move it justifies, and the
  rollups of the days that received new payments (`on_new_days`);
- two funding ingests of one wallet never run at once (an advisory lock of
  their own: fills and funding of one wallet may be fetched side by side);
- the outcome (last success, or last error) is recorded on the cursor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import psycopg

from jobs.ingest import OVERLAP_MS, IngestBusy, NewDays
from storage import funding, kind_cursor, locks
from storage.errors import first_line
from storage.funding import Funding
from storage.kind_cursor import FUNDING
from storage.orgs import Wallet

LOCK_WAIT_S = 60.0


class FundingPageLike(Protocol):
    @property
    def funding(self) -> Sequence[Funding]: ...
    @property
    def rejected(self) -> Sequence[tuple[object, str]]: ...
    @property
    def complete_until_ms(self) -> int: ...


class FundingSource(Protocol):
    def funding_pages(
        self, address: str, start_ms: int, end_ms: int | None = None
    ) -> AsyncIterator[FundingPageLike]: ...


@dataclass(frozen=True)
class FundingReport:
    wallet: Wallet
    start_ms: int
    pages: int
    fetched: int
    stored: int
    rejected: int
    new_days: frozenset[date]


async def ingest_funding(
    conn: psycopg.Connection,
    source: FundingSource,
    wallet: Wallet,
    *,
    on_new_days: NewDays,
    overlap_ms: int = OVERLAP_MS,
    lock_wait_s: float = LOCK_WAIT_S,
) -> FundingReport:
    """Fetches and stores the wallet's new funding payments; `conn` in autocommit mode."""
    if not conn.autocommit:
        raise ValueError("ingest_funding manages its own transactions: pass an autocommit one")
    deadline = time.monotonic() + lock_wait_s
    while not locks.try_lock_funding(conn, wallet.id):
        if time.monotonic() >= deadline:
            raise IngestBusy(
                f"another funding ingest of {wallet.address} held its lock for over "
                f"{lock_wait_s:.0f} s"
            )
        await asyncio.sleep(0.2)
    try:
        try:
            report = await _run(conn, source, wallet, on_new_days, overlap_ms)
        except Exception as exc:
            if not conn.closed and not conn.broken:
                with conn.transaction():
                    error = f"{type(exc).__name__}: {first_line(exc)}"
                    kind_cursor.record_error(conn, wallet.id, FUNDING, error)
            raise
        with conn.transaction():
            kind_cursor.record_success(conn, wallet.id, FUNDING)
        return report
    finally:
        if not conn.closed and not conn.broken:
            locks.unlock_funding(conn, wallet.id)


async def _run(
    conn: psycopg.Connection,
    source: FundingSource,
    wallet: Wallet,
    on_new_days: NewDays,
    overlap_ms: int,
) -> FundingReport:
    current = kind_cursor.get_cursor(conn, wallet.id, FUNDING)
    synced = current.synced_until_ms if current else None
    start_ms = 0 if synced is None else max(0, synced - overlap_ms)
    pages = fetched = stored = rejected = 0
    new_days: set[date] = set()
    async for page in source.funding_pages(wallet.address, start_ms):
        pages += 1
        fetched += len(page.funding)
        rejected += len(page.rejected)
        with conn.transaction():
            per_day = funding.insert_funding(conn, wallet.id, page.funding)
            for raw, reason in page.rejected:
                funding.quarantine(conn, wallet.id, raw, reason)
            new = sum(per_day.values())
            kind_cursor.advance(
                conn, wallet.id, FUNDING, until_ms=page.complete_until_ms, stored=new
            )
            if per_day:
                days = frozenset(per_day)
                on_new_days(conn, wallet, days)
                new_days |= days
        stored += new
    return FundingReport(wallet, start_ms, pages, fetched, stored, rejected, frozenset(new_days))
