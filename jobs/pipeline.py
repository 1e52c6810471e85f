"""What the rest of the program asks of the pipeline, in the caller's transaction.

`tracking_changed` is called by `wallets track/untrack` and by the GraphQL
mutations, inside the transaction that changed `org_wallets`: the follow-up
work is queued if and only if the change commits.

An org's numbers are sums over the wallets it tracks now, so tracking or
untracking a wallet changes every org-day on which that wallet traded: those
org-days are recomputed. A newly tracked wallet is also ingested (its fills may
not be stored yet; if they are, because another org tracks it, the ingest only
checks for new ones).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import psycopg

from hl_core.settings import Settings
from jobs import actors
from jobs.app import Pipeline, build
from storage import orgs, rollups

_senders: dict[str, Pipeline] = {}
_senders_lock = threading.Lock()


def sender(conn: psycopg.Connection) -> Pipeline:
    """A pipeline for sending on `conn` from a process that runs no worker.

    Sends inside `broker.transaction(conn)` use `conn` only, so this pipeline's
    own pool is never opened; one is kept per database.
    """
    dsn = conn.info.dsn
    with _senders_lock:
        if dsn not in _senders:
            _senders[dsn] = build(Settings.from_env(), dsn)
        return _senders[dsn]


def tracking_changed(
    conn: psycopg.Connection,
    org_id: uuid.UUID | str,
    wallet_ids: Sequence[int],
    *,
    pipeline: Pipeline | None = None,
) -> None:
    """Queues ingest of the wallets the org now tracks among `wallet_ids`, and the
    recomputation of the org's days on which any of them traded."""
    if not wallet_ids:
        return
    p = pipeline or sender(conn)
    org = orgs.parse_org_id(org_id)
    wanted = set(wallet_ids)
    tracked = [w.address for w in orgs.tracked_wallets(conn, org) if w.id in wanted]
    days = rollups.active_days(conn, list(wanted))
    with p.broker.transaction(conn):
        actors.send_ingests(p, tracked)
    actors.send_global_rollups(p, conn, [org], days)
