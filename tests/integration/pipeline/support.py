"""A pipeline on the test database, pointed at a simulated exchange, with a worker in-process."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import psycopg

from hl_core.settings import Settings
from hlsim.server import SimServer
from jobs.pipeline import Pipeline, build
from jobs.sync import queue_sync, wait_for
from storage import orgs
from storage.jobs import BatchProgress
from tests.integration.broker.support import standard_middleware
from tests.integration.pipeline.expected import Expected, add_funding, add_ledger, add_raw


@contextmanager
def pipeline(db_url: str, server: SimServer, **options: Any) -> Iterator[Pipeline]:
    settings = Settings.from_env(
        {"DATABASE_URL": db_url, "HYPERLIQUID_API_URL": server.url, "HYPERLIQUID_RPS": "1000"}
    )
    p = build(
        settings,
        db_url,
        lease_s=options.get("lease_s", 5.0),
        poll_s=0.2,
        middleware=standard_middleware(),
    )
    try:
        yield p
    finally:
        p.close()


@contextmanager
def worker(p: Pipeline, threads: int = 4) -> Iterator[dramatiq.Worker]:
    p.broker.emit_after("process_boot")
    w = dramatiq.Worker(p.broker, worker_threads=threads, worker_timeout=100)
    w.start()
    try:
        yield w
    finally:
        w.stop(timeout=10_000)


def sync(p: Pipeline, conn: psycopg.Connection, org_id: uuid.UUID | None = None) -> BatchProgress:
    """`hl-analytics sync --wait`, in-process; `conn` in autocommit mode."""
    return wait_for(conn, queue_sync(p, conn, org_id), out=io.StringIO())


def expected_of(conn: psycopg.Connection, server: SimServer) -> Expected:
    """The independent computation over the exchange's ground truth, keyed by our wallet ids."""
    expected = Expected()
    for wallet in orgs.upsert_wallets(conn, server.market.wallets):
        add_raw(expected, wallet.id, server.market.fills(wallet.address))
        add_funding(expected, wallet.id, server.market.funding(wallet.address))
        add_ledger(expected, wallet.id, wallet.address, server.market.ledger(wallet.address))
    return expected
