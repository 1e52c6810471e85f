"""The storage error boundary (storage/db.py): psycopg's errors become storage's.

A lost connection is DatabaseUnavailable, a missing table is MigrationError
("run `hl-analytics migrate`"), an integrity error is IntegrityRefused naming the
constraint; sync (`connection`, `borrow`, `errors`) and async (`async_borrow`).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from storage.db import async_borrow, async_pool, borrow, connection, errors, sync_pool
from storage.errors import DatabaseUnavailable, IntegrityRefused, MigrationError

FOREIGN_KEY = "INSERT INTO org_wallets (org_id, wallet_id) VALUES (%s, -1)"


def test_an_integrity_error_names_the_constraint(db_url: str) -> None:
    with (
        pytest.raises(IntegrityRefused, match="refused by the database") as caught,
        connection(db_url) as conn,
    ):
        conn.execute(FOREIGN_KEY, (uuid.uuid4(),))
    assert caught.value.constraint is not None
    assert caught.value.constraint in caught.value.message


def test_a_missing_table_says_to_migrate(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("ALTER TABLE orgs RENAME TO orgs_gone")
    with (
        pytest.raises(MigrationError, match="run `hl-analytics migrate` first"),
        connection(db_url) as conn,
    ):
        conn.execute("SELECT count(*) FROM orgs")


def test_a_lost_connection_is_database_unavailable(db_url: str) -> None:
    with connection(db_url, autocommit=True) as victim:
        pid = victim.info.backend_pid
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DatabaseUnavailable), errors():
            victim.execute("SELECT 1")


def test_a_pooled_connection_is_inside_the_boundary(db_url: str) -> None:
    pool = sync_pool(db_url, max_size=1)
    try:
        with pytest.raises(IntegrityRefused), borrow(pool, timeout=10) as conn:
            conn.execute(FOREIGN_KEY, (uuid.uuid4(),))
        with borrow(pool, timeout=10) as conn:  # the pool is still usable
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close()


def test_an_unreachable_database_is_unavailable() -> None:
    with (
        pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL"),
        connection("postgresql://postgres@127.0.0.1:9/nowhere"),
    ):
        pass


async def test_async_borrow_translates_too(db_url: str) -> None:
    pool = async_pool(db_url, max_size=1)
    await pool.open()
    try:
        with pytest.raises(IntegrityRefused):
            async with async_borrow(pool, 10) as conn:
                await conn.execute(FOREIGN_KEY, (uuid.uuid4(),))
        with pytest.raises(MigrationError):
            async with async_borrow(pool, 10) as conn:
                await conn.execute("SELECT * FROM no_such_table")
        async with async_borrow(pool, 10) as conn:
            cur = await conn.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
    finally:
        await pool.close()


async def test_the_api_pool_turns_jit_off(db_url: str) -> None:
    """storage.db.API_SESSION: the API's reads run without JIT compilation, idle in no
    transaction when handed out."""
    pool = async_pool(db_url, max_size=1)
    await pool.open()
    try:
        async with async_borrow(pool, 10) as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            cur = await conn.execute("SHOW jit")
            assert await cur.fetchone() == ("off",)
    finally:
        await pool.close()
