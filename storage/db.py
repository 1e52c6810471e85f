"""Connections and pools (psycopg 3 and psycopg-pool), and the storage error boundary.

Workers and the command line use the synchronous pool; the API uses the
asynchronous one. Both are opened by their owner (a worker process, the API's
lifespan) and passed down: there is no module-level pool.

psycopg's exceptions do not leave `storage`: every connection borrowed here
(`connect`, `connection`, `borrow`, `async_borrow`) is used inside `errors` (or
`async_errors`), which translates them into the domain errors of
`storage.errors`:

- a lost or unreachable connection (`OperationalError`, `PoolTimeout` included)
  → `DatabaseUnavailable`;
- a missing table → `MigrationError` ("run `hl-analytics migrate`");
- an integrity error (foreign key, unique, check, not null) → `IntegrityRefused`,
  naming the constraint.

Any other database error is a bug and goes up unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from storage.errors import DatabaseUnavailable, IntegrityRefused, MigrationError, first_line
from storage.lending import GuardedPool

CONNECT_TIMEOUT_S = 10
# psycopg-pool retries a failed connection with a delay that doubles up to this
# timeout (default 5 minutes): after a long outage the pool could wait about as long
# again before its next try, answering "unavailable" with the database back. Giving
# up sooner lets the next request start a fresh attempt at once.
RECONNECT_TIMEOUT_S = 10.0


def translate(exc: psycopg.Error, what: str = "the database went away") -> NoReturn:
    """Raises the storage error that stands for `exc`, or `exc` itself when none does."""
    if isinstance(exc, psycopg.OperationalError):
        raise DatabaseUnavailable(f"{what} ({first_line(exc)})") from None
    if isinstance(exc, psycopg.errors.UndefinedTable):
        raise MigrationError(
            f"the database is not migrated ({first_line(exc)}): run `hl-analytics migrate` first"
        ) from None
    if isinstance(exc, psycopg.IntegrityError):
        constraint = exc.diag.constraint_name
        raise IntegrityRefused(
            f"refused by the database: {exc.diag.message_primary or first_line(exc)}"
            + (f" (constraint {constraint})" if constraint else ""),
            constraint=constraint,
        ) from None
    raise exc


@contextmanager
def errors(what: str = "the database went away") -> Iterator[None]:
    """The storage error boundary around synchronous database work (see the module)."""
    try:
        yield
    except psycopg.Error as exc:
        translate(exc, what)


@asynccontextmanager
async def async_errors(what: str = "the database went away") -> AsyncIterator[None]:
    """`errors`, around asynchronous database work."""
    try:
        yield
    except psycopg.Error as exc:
        translate(exc, what)


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
    """One connection for one transaction (committed at the end unless `autocommit`),
    inside the error boundary."""
    conn = connect(url, autocommit=autocommit)
    try:
        with errors(), conn:
            yield conn
    finally:
        conn.close()


@contextmanager
def borrow(pool: ConnectionPool, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A connection of `pool`, inside the error boundary (the pool's own `connection`
    otherwise: commit at the end, rollback on an error)."""
    with errors("the database is unavailable"), pool.connection(timeout=timeout) as conn:
        yield conn


@asynccontextmanager
async def async_borrow(
    pool: AsyncConnectionPool, timeout: float
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection of the API's pool, or DatabaseUnavailable when none comes within
    `timeout`; inside the error boundary."""
    async with (
        async_errors("the database is unavailable"),
        pool.connection(timeout=timeout) as conn,
    ):
        yield conn


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


# Session settings of the API's connections. No JIT: PostgreSQL compiles a statement
# whose estimated cost passes `jit_above_cost`, which a ranking of tens of thousands of
# wallets does, and that took about 70 ms a statement here (EXPLAIN ANALYZE of
# topWallets at 50,000 wallets, bench/bench_read_models.py's seed) for statements that
# run in 100-300 ms: JIT pays off on long analytic queries, not on the API's reads.
API_SESSION = "SET jit = off"


async def _configure_api_session(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(API_SESSION)
    await conn.commit()


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
        configure=_configure_api_session,
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        open=False,
        name=name,
    )


# Which database a connection is on, the same whatever address reached it: the
# cluster's system identifier and the database's oid.
DATABASE_IDENTITY = """
SELECT c.system_identifier::text || '.' || d.oid::text
FROM pg_control_system() c, pg_database d
WHERE d.datname = current_database()
"""


async def database_identity(conn: psycopg.AsyncConnection[Any]) -> str:
    """A name of the connection's database that no other database shares (for keys kept
    outside it, such as a Redis shared by several deployments)."""
    row = await (await conn.execute(DATABASE_IDENTITY)).fetchone()
    assert row is not None
    return str(row[0])


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))
