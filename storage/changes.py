"""The "an org's numbers changed" notification: one channel, one sender, one listener.

Whatever changes what an org's API answers (an org-day rollup, tracking or
untracking a wallet) calls `notify_changed` in its own transaction: PostgreSQL
delivers the notification only if that transaction commits, to every API
instance LISTENing (`listen_changes`), which drops the org's cached answers,
and to `node-ingest` (`listen_changes_sync`, `received`), which re-reads the
org's tracked wallets.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg

from storage.db import async_errors, connect, errors

CHANNEL = "hl_metrics_changed"
LISTEN = f"LISTEN {CHANNEL}"
NOTIFY = "SELECT pg_notify(%s, %s)"


def notify_changed(conn: psycopg.Connection, org_id: uuid.UUID) -> None:
    """Tells every API instance, at commit, that the org's numbers changed."""
    conn.execute(NOTIFY, (CHANNEL, str(org_id)))


async def listen_changes(
    database_url: str, on_listening: Callable[[], Awaitable[None] | None]
) -> AsyncIterator[str]:
    """Payloads of `hl_metrics_changed` notifications (org ids), until the link drops.

    `on_listening` runs once LISTEN is in place. A lost connection raises
    DatabaseUnavailable; the caller reconnects.
    """
    async with async_errors("cannot listen for changes"):
        conn = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, application_name="hl-analytics-api-listen"
        )
    async with async_errors("lost the change notifications"), conn:
        await conn.execute(LISTEN)
        started = on_listening()
        if started is not None:
            await started
        async for notify in conn.notifies():
            yield notify.payload


def listen_changes_sync(database_url: str, application_name: str) -> psycopg.Connection:
    """A connection LISTENing on `hl_metrics_changed`, for a synchronous loop; read it
    with `received`. A database that cannot be reached is DatabaseUnavailable."""
    conn = connect(database_url, autocommit=True, application_name=application_name)
    try:
        with errors("cannot listen for changes"):
            conn.execute(LISTEN)
    except BaseException:
        conn.close()
        raise
    return conn


def received(conn: psycopg.Connection, timeout_s: float) -> list[str]:
    """The payloads (org ids) notified on `conn` so far, waiting up to `timeout_s` for the
    first when none is pending (0: only what already arrived). A lost link is
    DatabaseUnavailable: notifications may have been missed."""
    with errors("lost the change notifications"):
        payloads = [n.payload for n in conn.notifies(timeout=timeout_s, stop_after=1)]
        for _ in range(100):  # a steady stream must not hold the caller
            more = [n.payload for n in conn.notifies(timeout=0)]
            if not more:
                break
            payloads += more
        return payloads
