"""Tracking and untracking wallets: the one operation, in the caller's transaction.

`track_wallets` and `untrack_wallet` are what `wallets track/untrack`, the demo
and the GraphQL mutations call. Each does, on the caller's connection and inside
its transaction: the change to `org_wallets`, the follow-up work
(`tracking_changed`), and the API notification (`storage.changes`), so the
follow-up is queued, and every API instance drops the org's cached answers
(its tracked wallets changed at once, whatever the pipeline does later), if and
only if the change commits.

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
from dataclasses import dataclass

import psycopg

from hl_core.settings import Settings
from jobs import actors
from jobs.pipeline import Pipeline, build
from storage import changes, orgs, rollups
from storage.orgs import Wallet

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
        actors.send_every_kind(p, tracked, fair_keys=str(org))
    actors.send_global_rollups(p, conn, [org], days)


@dataclass(frozen=True)
class Tracked:
    """The wallets given to `track_wallets` (normalised) and those newly tracked."""

    wallets: list[Wallet]
    added: list[Wallet]


def track_wallets(
    conn: psycopg.Connection,
    org_id: uuid.UUID | str,
    addresses: Sequence[str],
    *,
    max_wallets: int,
    pipeline: Pipeline | None = None,
) -> Tracked:
    """Tracks the addresses for the org, queues the follow-up work of the newly tracked
    ones and notifies the API, all in the caller's transaction. An unknown org is
    `OrgNotFound`; one bad address is `InvalidAddress`, and going beyond `max_wallets`
    (HL_ANALYTICS_MAX_WALLETS_PER_ORG) `TooManyWallets`; both write nothing."""
    org = orgs.parse_org_id(org_id)
    wallets, added = orgs.track_wallets(conn, org, addresses, max_wallets=max_wallets)
    tracking_changed(conn, org, [w.id for w in added], pipeline=pipeline)
    changes.notify_changed(conn, org)
    return Tracked(wallets, added)


def untrack_wallet(
    conn: psycopg.Connection,
    org_id: uuid.UUID | str,
    address: str,
    *,
    pipeline: Pipeline | None = None,
) -> Wallet | None:
    """Stops tracking the wallet for the org, queues the recomputation of the org's days
    and notifies the API, in the caller's transaction; returns the wallet, or None
    when the org did not track it (nothing changed). An unknown org is `OrgNotFound`."""
    org = orgs.get_org(conn, org_id).id
    wallet = orgs.untrack_wallet(conn, org, address)
    if wallet is not None:
        tracking_changed(conn, org, [wallet.id], pipeline=pipeline)
        changes.notify_changed(conn, org)
    return wallet
