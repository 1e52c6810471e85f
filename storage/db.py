"""Connections and pools (psycopg 3 and psycopg-pool).

Workers and the command line use the synchronous pool; the API uses the
asynchronous one. Both are opened by their owner (a worker process, the API's
lifespan) and passed down: there is no module-level pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from storage.errors import DatabaseUnavailable, first_line
from storage.lending import GuardedPool

CONNECT_TIMEOUT_S = 10
# psycopg-pool retries a failed connection with a delay that doubles up to this
# timeout (default 5 minutes): after a long outage the pool could wait about as long
# again before its next try, answering "unavailable" with the database back. Giving
# up sooner lets the next request start a fresh attempt at once.
RECONNECT_TIMEOUT_S = 10.0


def _kwargs(application_name: str) -> dict[str, object]:
    return {"application_name": application_name, "connect_timeout": CONNECT_TIMEOUT_S}


def connect(
    url: str, *, autocommit: bool = False, application_name: str = "hl-analytics"
) -> psycopg.Connection:
    """One connection, with a one-line error when the database cannot be reached."""
    try:
        return psycopg.connect(url, autocommit=autocommit, **_kwargs(application_name))  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({first_line(exc)}): "
            "check DATABASE_URL and that the server is running"
        ) from None


@contextmanager
def connection(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    conn = connect(url, autocommit=autocommit)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def sync_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    name: str = "hl-analytics",
    autocommit: bool = False,
    check: bool = True,
) -> ConnectionPool:
    """An opened pool that survives a restarted database: reconnects are bounded, and
    connections are checked on borrow unless `check=False` (a caller that retries on
    its own saves the round trip)."""
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={**_kwargs(name), "autocommit": autocommit},
        check=ConnectionPool.check_connection if check else None,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        open=False,
        name=name,
    )
    pool.open(wait=False)
    return pool


def async_pool(
    url: str, *, min_size: int = 1, max_size: int = 8, name: str = "hl-analytics-api"
) -> GuardedPool:
    """The API's pool; the caller opens it (`await pool.open()`) in its lifespan.
    Returning a connection to it cannot be interrupted (`storage/lending.py`)."""
    return GuardedPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs=_kwargs(name),
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        open=False,
        name=name,
    )


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))
