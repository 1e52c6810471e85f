"""The admin mutations' database work: one transaction on a synchronous connection.

Tracking a wallet and queueing its ingest and the org's recomputation commit
together (or not at all), through the pipeline's `jobs.pipeline.tracking_changed`.
It runs in a worker thread because the pipeline's functions are synchronous.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from storage import metrics, orgs
from storage.db import connection
from storage.errors import DatabaseUnavailable, first_line

log = logging.getLogger(__name__)
MAX_ADDRESSES = 100


def _tracking_changed() -> Callable[..., Any] | None:
    """The pipeline's hook, imported late: `jobs` imports heavy worker code."""
    try:
        module = importlib.import_module("jobs.pipeline")
    except ModuleNotFoundError:
        return None
    hook: Callable[..., Any] | None = getattr(module, "tracking_changed", None)
    return hook


def _queue_follow_up(conn: psycopg.Connection, org_id: uuid.UUID, wallet_ids: list[int]) -> None:
    if wallet_ids:
        hook = _tracking_changed()
        if hook is None:
            log.warning(
                "jobs.pipeline.tracking_changed is missing: nothing queued; "
                "run `hl-analytics sync` to ingest the change",
                extra={"action": "pipeline_missing", "org_id": str(org_id)},
            )
        else:
            hook(conn, org_id, wallet_ids)
    # trackedWallets changed at once, whatever the pipeline does later.
    metrics.notify_changed(conn, org_id)


def track(
    database_url: str, org_id: uuid.UUID, addresses: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Returns (every address given, those newly tracked), normalised."""
    try:
        with connection(database_url) as conn:
            wallets, added = orgs.track_wallets(conn, org_id, addresses)
            _queue_follow_up(conn, org_id, [w.id for w in added])
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"the database went away ({first_line(exc)})") from None
    return [w.address for w in wallets], [w.address for w in added]


def untrack(database_url: str, org_id: uuid.UUID, address: str) -> bool:
    """True when the org tracked the wallet (and no longer does)."""
    try:
        with connection(database_url) as conn:
            wallet = orgs.untrack_wallet(conn, org_id, address)
            if wallet is not None:
                _queue_follow_up(conn, org_id, [wallet.id])
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"the database went away ({first_line(exc)})") from None
    return wallet is not None
