"""A readiness probe on a connection of its own, outside the request pool.

`/readyz` asks whether the database answers. Borrowing from the request pool to
find out would let readiness checks take connections from requests (and wait
behind them); this probe keeps one autocommit connection, runs `SELECT 1` on it,
and reconnects when it was lost. The API calls it at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg

from storage.errors import DatabaseUnavailable, first_line

PING = "SELECT 1"


class DatabaseProbe:
    def __init__(self, database_url: str, *, timeout: float, application_name: str) -> None:
        self.database_url = database_url
        self.timeout = timeout
        self.application_name = application_name
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def ping(self) -> None:
        """Returns when the database answered within the timeout; else DatabaseUnavailable."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self.database_url,
                        autocommit=True,
                        application_name=self.application_name,
                        connect_timeout=max(1, int(self.timeout)),
                    )
                await self._conn.execute(PING)
        except (psycopg.Error, TimeoutError) as exc:
            await self.close()
            reason = "no answer in time" if isinstance(exc, TimeoutError) else first_line(exc)
            raise DatabaseUnavailable(f"the database does not answer ({reason})") from None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()
