"""The pipeline's wiring: a broker for one database and the project's actors on it.

`Pipeline` is built, not imported: every actor is declared on the pipeline's
own broker, so a process (a test, the `sync` command) can hold pipelines for
several databases, and nothing touches a database at import time. Dramatiq's
`dramatiq` command needs a module-level broker: `jobs.worker_entry` builds the
pipeline from the environment for it.

Queues: `ingest` (paced by Hyperliquid's rate limit: a wallet's fills, its
funding payments and ledger updates with `ingest_funding` and `ingest_ledger`,
its account with `snapshot_positions`)
and `rollups` (database only). A worker's threads serve both; rollups have the higher priority
(Dramatiq's `priority`, lower first), so a thread that frees up during a long
backlog of ingests runs the waiting rollups first and stored fills become
visible numbers without waiting for the whole backlog.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from psycopg_pool import ConnectionPool

from hl_core.settings import Settings
from jobs import actors
from jobs.broker import PostgresBroker
from jobs.errors import HyperliquidRejected
from jobs.markets import MarketCatalog
from storage.db import sync_pool

QUEUE_INGEST = "ingest"
QUEUE_ROLLUPS = "rollups"

INGEST_OPTIONS: dict[str, Any] = {
    "queue_name": QUEUE_INGEST,
    "priority": 10,
    "max_retries": 8,
    "min_backoff": 5_000,
    "max_backoff": 300_000,
    "time_limit": 15 * 60_000,
    # Hyperliquid refused the request: retrying cannot help, the job fails at once.
    "throws": (HyperliquidRejected,),
}
ROLLUP_OPTIONS: dict[str, Any] = {
    "queue_name": QUEUE_ROLLUPS,
    "priority": 0,
    "max_retries": 10,
    "min_backoff": 1_000,
    "max_backoff": 60_000,
    "time_limit": 5 * 60_000,
}


@dataclass
class Pipeline:
    """The broker, the actors declared on it, and the database pool the actors use."""

    settings: Settings
    database_url: str
    broker: PostgresBroker
    pool_size: int = 4
    ingest_wallet: dramatiq.Actor[..., None] = field(init=False)
    ingest_funding: dramatiq.Actor[..., None] = field(init=False)
    ingest_ledger: dramatiq.Actor[..., None] = field(init=False)
    snapshot_positions: dramatiq.Actor[..., None] = field(init=False)
    rollup_wallet_days: dramatiq.Actor[..., None] = field(init=False)
    rollup_global_day: dramatiq.Actor[..., None] = field(init=False)
    resolve_markets: dramatiq.Actor[..., None] = field(init=False)
    # Hyperliquid's market metadata, cached for the process (jobs.markets).
    catalog: MarketCatalog = field(default_factory=MarketCatalog, init=False)
    _pool: ConnectionPool | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        def ingest_wallet(address: str) -> None:
            actors.ingest_wallet(self, address)

        def ingest_funding(address: str) -> None:
            actors.ingest_funding(self, address)

        def ingest_ledger(address: str) -> None:
            actors.ingest_ledger(self, address)

        def snapshot_positions(address: str) -> None:
            actors.snapshot_positions(self, address)

        def rollup_wallet_days(day: str) -> None:
            actors.rollup_wallet_days(self, day)

        def rollup_global_day(org_id: str, day: str) -> None:
            actors.rollup_global_day(self, org_id, day)

        def resolve_markets(coins: list[str]) -> None:
            actors.resolve_markets(self, coins)

        self.ingest_wallet = dramatiq.actor(broker=self.broker, **INGEST_OPTIONS)(ingest_wallet)
        self.ingest_funding = dramatiq.actor(broker=self.broker, **INGEST_OPTIONS)(ingest_funding)
        self.ingest_ledger = dramatiq.actor(broker=self.broker, **INGEST_OPTIONS)(ingest_ledger)
        self.snapshot_positions = dramatiq.actor(broker=self.broker, **INGEST_OPTIONS)(
            snapshot_positions
        )
        # One decorator per actor: Dramatiq's decorator remembers the first name it gave.
        self.rollup_wallet_days = dramatiq.actor(broker=self.broker, **ROLLUP_OPTIONS)(
            rollup_wallet_days
        )
        self.rollup_global_day = dramatiq.actor(broker=self.broker, **ROLLUP_OPTIONS)(
            rollup_global_day
        )
        # On the ingest queue: its requests are paced by Hyperliquid's rate limit too.
        self.resolve_markets = dramatiq.actor(broker=self.broker, **INGEST_OPTIONS)(resolve_markets)

    @property
    def pool(self) -> ConnectionPool:
        """Autocommit connections for the actors; opened on first use (after any fork)."""
        with self._lock:
            if self._pool is None:
                self._pool = sync_pool(
                    self.database_url,
                    max_size=self.pool_size,
                    name="hl-analytics-worker",
                    autocommit=True,
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        self.broker.close()


def build(
    settings: Settings,
    database_url: str,
    *,
    lease_s: float = 30.0,
    poll_s: float = 1.0,
    pool_size: int = 4,
    middleware: list[Middleware] | None = None,
) -> Pipeline:
    """A pipeline on `database_url`; `lease_s` bounds how late a killed worker's jobs rerun."""
    broker = PostgresBroker(
        database_url, middleware=middleware, lease_s=lease_s, poll_s=poll_s, pool_size=pool_size
    )
    return Pipeline(settings, database_url, broker, pool_size=pool_size)
