"""The "an org's numbers changed" notification: one channel, one sender, one listener.

Whatever changes what an org's API answers (an org-day rollup, tracking or
untracking a wallet) calls `notify_changed` in its own transaction: PostgreSQL
delivers the notification only if that transaction commits, to every API
instance LISTENing (`listen_changes`), which drops the org's cached answers and
tells the org's live subscriptions which day changed, and to `node-ingest`
(`listen_changes_sync`, `received`), which re-reads the org's tracked wallets. The
payload is the org id, followed by a space and the UTC day when the change is one
day's (`parse_change`).
The API then hides only the cached answers that read that day.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date

import psycopg

from storage.db import async_errors, connect, database_identity, errors

CHANNEL = "hl_metrics_changed"
LISTEN = f"LISTEN {CHANNEL}"
NOTIFY = "SELECT pg_notify(%s, %s)"


@dataclass(frozen=True, slots=True)
class Change:
    org_id: uuid.UUID
    # The UTC day whose numbers changed; None when the change is not one day's.
    day: date | None


def notify_changed(conn: psycopg.Connection, org_id: uuid.UUID, day: date | None = None) -> None:
    """Tells every API instance, at commit, that the org's numbers (of `day`) changed.
    PostgreSQL folds identical notifications of one transaction into one."""
    conn.execute(NOTIFY, (CHANNEL, payload(org_id, day)))


def payload(org_id: uuid.UUID, day: date | None = None) -> str:
    """What `notify_changed` sends: the org id, then a space and the day when given."""
    return str(org_id) if day is None else f"{org_id} {day.isoformat()}"


def parse_change(payload: str) -> Change:
    """The change a payload names; ValueError when it is not one of `notify_changed`'s."""
    org, _, day = payload.partition(" ")
    return Change(uuid.UUID(org), date.fromisoformat(day) if day else None)


async def listen_changes(
    database_url: str, on_listening: Callable[[str], Awaitable[None] | None]
) -> AsyncIterator[str]:
    """Payloads of `hl_metrics_changed` notifications (`parse_change`), until the link drops.

    `on_listening` runs once LISTEN is in place, with the database's identity
    (`database_identity`). A lost connection raises DatabaseUnavailable; the caller
    reconnects.
    """
    async with async_errors("cannot listen for changes"):
        conn = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, application_name="hl-analytics-api-listen"
        )
    async with async_errors("lost the change notifications"), conn:
        await conn.execute(LISTEN)
        started = on_listening(await database_identity(conn))
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
    """The payloads (`parse_change`) notified on `conn` so far, waiting up to `timeout_s` for the
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
