"""Ingest of one wallet's funding payments or non-funding ledger updates, exactly once.

The same guarantees as the fills' ingest (jobs.ingest), for a kind paged by time
(`userFunding`, `userNonFundingLedgerUpdates`; `PagedKind` says which):

- it resumes from the wallet's cursor of that kind (storage.kind_cursor) minus
  a 10-minute overlap; re-fetched items are stored once (storage.funding and
  storage.ledger are idempotent on their identity);
- each page is one transaction: its items, its rejected entries (quarantined
  with their reason), the cursor move it justifies, and the rollups of the days
  whose numbers the new items change (`on_new_days`);
- two ingests of one kind of one wallet never run at once (an advisory lock per
  kind: fills, funding and ledger of one wallet may be fetched side by side);
- the outcome (last success, or last error) is recorded on the cursor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import psycopg

from jobs.ingest import OVERLAP_MS, IngestBusy, NewDays
from storage import funding, kind_cursor, ledger, locks
from storage.errors import first_line
from storage.kind_cursor import FUNDING, LEDGER
from storage.orgs import Wallet

LOCK_WAIT_S = 60.0


class PageLike(Protocol):
    @property
    def items(self) -> Sequence[Any]: ...
    @property
    def rejected(self) -> Sequence[tuple[object, str]]: ...
    @property
    def complete_until_ms(self) -> int: ...


Pages = Callable[[str, int], AsyncIterator[PageLike]]


@dataclass(frozen=True)
class PagedKind:
    """What differs between the kinds: the cursor's kind, storing, quarantining."""

    kind: str
    store: Callable[[psycopg.Connection, int, Sequence[Any]], dict[date, int]]
    quarantine: Callable[[psycopg.Connection, int, Any, str], None]


FUNDING_KIND = PagedKind(FUNDING, funding.insert_funding, funding.quarantine)
LEDGER_KIND = PagedKind(LEDGER, ledger.insert_ledger, ledger.quarantine)


@dataclass(frozen=True)
class PagedReport:
    wallet: Wallet
    start_ms: int
    pages: int
    fetched: int
    stored: int
    rejected: int
    new_days: frozenset[date]


async def ingest_paged(
    conn: psycopg.Connection,
    pages: Pages,
    kind: PagedKind,
    wallet: Wallet,
    *,
    on_new_days: NewDays,
    overlap_ms: int = OVERLAP_MS,
    lock_wait_s: float = LOCK_WAIT_S,
) -> PagedReport:
    """Fetches and stores the wallet's new items of `kind`; `conn` in autocommit mode."""
    if not conn.autocommit:
        raise ValueError("an ingest manages its own transactions: pass an autocommit one")
    deadline = time.monotonic() + lock_wait_s
    while not locks.try_lock_kind(conn, kind.kind, wallet.id):
        if time.monotonic() >= deadline:
            raise IngestBusy(
                f"another {kind.kind} ingest of {wallet.address} held its lock for over "
                f"{lock_wait_s:.0f} s"
            )
        await asyncio.sleep(0.2)
    try:
        try:
            report = await _run(conn, pages, kind, wallet, on_new_days, overlap_ms)
        except Exception as exc:
            if not conn.closed and not conn.broken:
                with conn.transaction():
                    error = f"{type(exc).__name__}: {first_line(exc)}"
                    kind_cursor.record_error(conn, wallet.id, kind.kind, error)
            raise
        with conn.transaction():
            kind_cursor.record_success(conn, wallet.id, kind.kind)
        return report
    finally:
        if not conn.closed and not conn.broken:
            locks.unlock_kind(conn, kind.kind, wallet.id)


async def _run(
    conn: psycopg.Connection,
    pages: Pages,
    kind: PagedKind,
    wallet: Wallet,
    on_new_days: NewDays,
    overlap_ms: int,
) -> PagedReport:
    current = kind_cursor.get_cursor(conn, wallet.id, kind.kind)
    synced = current.synced_until_ms if current else None
    start_ms = 0 if synced is None else max(0, synced - overlap_ms)
    count = fetched = stored = rejected = 0
    new_days: set[date] = set()
    async for page in pages(wallet.address, start_ms):
        count += 1
        fetched += len(page.items)
        rejected += len(page.rejected)
        with conn.transaction():
            per_day = kind.store(conn, wallet.id, page.items)
            for raw, reason in page.rejected:
                kind.quarantine(conn, wallet.id, raw, reason)
            new = sum(per_day.values())
            until = page.complete_until_ms
            kind_cursor.advance(conn, wallet.id, kind.kind, until_ms=until, stored=new)
            if per_day:
                days = frozenset(per_day)
                on_new_days(conn, wallet, days)
                new_days |= days
        stored += new
    return PagedReport(wallet, start_ms, count, fetched, stored, rejected, frozenset(new_days))


class FundingSource(Protocol):
    def funding_pages(
        self, address: str, start_ms: int, end_ms: int | None = None
    ) -> AsyncIterator[PageLike]: ...


async def ingest_funding(
    conn: psycopg.Connection,
    source: FundingSource,
    wallet: Wallet,
    *,
    on_new_days: NewDays,
    overlap_ms: int = OVERLAP_MS,
    lock_wait_s: float = LOCK_WAIT_S,
) -> PagedReport:
    """The wallet's new funding payments (see the module docstring)."""
    return await ingest_paged(
        conn,
        lambda address, start: source.funding_pages(address, start),
        FUNDING_KIND,
        wallet,
        on_new_days=on_new_days,
        overlap_ms=overlap_ms,
        lock_wait_s=lock_wait_s,
    )
