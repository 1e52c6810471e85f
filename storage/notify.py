"""Profile-change notifications: `hl_profiles_changed`, sent by migration 0011's trigger.

The payload is the user id whose profile was inserted, changed or deleted (empty
after a TRUNCATE: every profile). Connection errors become DatabaseUnavailable;
the API's listener reconnects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg

from storage.db import database_identity
from storage.errors import DatabaseUnavailable, first_line

PROFILES_CHANNEL = "hl_profiles_changed"


async def listen_profiles(
    database_url: str, on_listening: Callable[[str], Awaitable[None]]
) -> AsyncIterator[str]:
    """User ids whose profile changed, until the link drops; `on_listening` runs once
    LISTEN is in place, with the database's identity (`database_identity`)."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, application_name="hl-analytics-api-profiles"
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot listen for profile changes ({first_line(exc)})"
        ) from None
    try:
        async with conn:
            await conn.execute(f"LISTEN {PROFILES_CHANNEL}")
            await on_listening(await database_identity(conn))
            async for notify in conn.notifies():
                yield notify.payload
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"lost the profile notifications ({first_line(exc)})") from None
