"""The API's pool, and the one connection of a request.

`GuardedPool` is psycopg-pool's `AsyncConnectionPool` with two changes:

- Giving a connection back cannot be interrupted. The pool resets a returned
  connection (a rollback) before it counts it as available again; a task cancelled
  in the middle of that (graphql-core cancels a request's other fields when one of
  them fails) lost the connection while the pool still counted it, until no
  connection was left and every request waited for nothing. `putconn` now runs
  in a task of its own that a cancellation of the caller does not reach.
- It remembers since when it has been unable to hand out a connection
  (`stalled_for`), for the API's `/healthz`.

`RequestConnection` is what a request's resolvers share: the connection is
borrowed at the first field that needs one, used by one field at a time, and
given back once when the request ends, so a request holds at most one connection
however many fields it selects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from storage.errors import DatabaseUnavailable, first_line

Connection = psycopg.AsyncConnection[Any]


class GuardedPool(AsyncConnectionPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._returning: set[asyncio.Task[None]] = set()
        self._failing_since: float | None = None

    async def getconn(self, timeout: float | None = None) -> Connection:
        try:
            conn: Connection = await super().getconn(timeout)
        except PoolTimeout:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            raise
        self._failing_since = None
        return conn

    async def putconn(self, conn: Connection) -> None:
        """Returns the connection; a cancelled caller still returns it, in the background."""
        task = asyncio.get_running_loop().create_task(self._putconn_now(conn))
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)
        await asyncio.shield(task)

    async def _putconn_now(self, conn: Connection) -> None:
        await super().putconn(conn)

    def stalled_for(self) -> float:
        """Seconds since a borrow last timed out with no borrow succeeding since; 0 if none."""
        since = self._failing_since
        return 0.0 if since is None else time.monotonic() - since

    async def returns_done(self) -> None:
        """Waits for connections being given back in the background (tests, shutdown)."""
        while self._returning:
            await asyncio.gather(*self._returning, return_exceptions=True)


async def _getconn(pool: AsyncConnectionPool, timeout: float) -> Connection:
    try:
        conn: Connection = await pool.getconn(timeout)
    except psycopg.OperationalError as exc:  # PoolTimeout is one too
        raise DatabaseUnavailable(f"the database is unavailable ({first_line(exc)})") from None
    return conn


class RequestConnection:
    """At most one pooled connection for one request, used by one field at a time."""

    def __init__(self, pool: AsyncConnectionPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._conn: Connection | None = None
        self._finished = False
        # Once a borrow timed out, the request's other fields fail at once rather than
        # each waiting out the pool's timeout in turn.
        self._unavailable: str | None = None

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Connection]:
        async with self._lock:
            if self._finished:
                raise DatabaseUnavailable("the request has finished")
            if self._unavailable is not None:
                raise DatabaseUnavailable(self._unavailable)
            if self._conn is None:
                try:
                    self._conn = await _getconn(self._pool, self._timeout)
                except DatabaseUnavailable as exc:
                    self._unavailable = exc.message
                    raise
            conn = self._conn
            try:
                yield conn
            except BaseException:
                # The field failed or was cancelled, perhaps in the middle of a
                # statement: the pool resets or replaces the connection, and the
                # next field (if any) borrows another. A field that refused its
                # arguments between statements leaves an idle transaction, ended here:
                # the pool would log a warning for each such request.
                self._conn = None
                await asyncio.shield(self._end(conn))
                raise

    async def release(self) -> None:
        """Gives the connection back; waits for a field still using it to let go."""
        async with self._lock:
            self._finished = True
            conn, self._conn = self._conn, None
            if conn is not None:
                await asyncio.shield(self._end(conn))

    async def _end(self, conn: Connection) -> None:
        """Ends the fields' read transaction (the pool would warn about it), returns the
        connection; a broken one is the pool's to replace."""
        if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            with contextlib.suppress(psycopg.Error):
                await conn.rollback()
        await self._pool.putconn(conn)
