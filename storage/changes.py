"""The "an org's numbers changed" notification: one channel, one sender, one listener.

Whatever changes what an org's API answers (an org-day rollup, tracking or
untracking a wallet) calls `notify_changed` in its own transaction: PostgreSQL
delivers the notification only if that transaction commits, to every API
instance LISTENing (`listen_changes`), which drops the org's cached answers.
The payload is the org id, followed by a space and the UTC day when the change
is one day's (a rollup): the API then drops only the answers that read that day.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date

import psycopg

from storage.db import async_errors

CHANNEL = "hl_metrics_changed"
LISTEN = f"LISTEN {CHANNEL}"
NOTIFY = "SELECT pg_notify(%s, %s)"


def notify_changed(conn: psycopg.Connection, org_id: uuid.UUID, day: date | None = None) -> None:
    """Tells every API instance, at commit, that the org's numbers changed (on `day` only,
    when given). PostgreSQL folds identical notifications of one transaction into one."""
    conn.execute(NOTIFY, (CHANNEL, payload(org_id, day)))


def payload(org_id: uuid.UUID, day: date | None = None) -> str:
    return str(org_id) if day is None else f"{org_id} {day.isoformat()}"


def parse_payload(text: str) -> tuple[uuid.UUID, date | None]:
    """The org and day of a payload; ValueError when it is neither form."""
    org, _, day = text.partition(" ")
    return uuid.UUID(org), date.fromisoformat(day) if day else None


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
