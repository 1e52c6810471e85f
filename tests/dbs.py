"""Test databases: one migrated template per run, a fresh copy per test.

The server is TEST_DATABASE_URL's when set, else an embedded PostgreSQL in a
temporary folder. Every database this run creates carries the run's prefix and
is dropped at the end, since a shared server outlives the run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from storage import embedded
from storage.db import with_database
from storage.migrate import migrate


class TestDatabases:
    __test__ = False

    def __init__(self) -> None:
        self.prefix = f"hla_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        base = os.environ.get("TEST_DATABASE_URL")
        if base:
            self.server_url = base
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="hla-pg-")
            self.server_url = embedded.server_url(Path(self._tmp.name))
        self.admin_url = with_database(self.server_url, "postgres")
        self.template = f"{self.prefix}_template"
        self._count = 0
        self._create(self.template)
        migrate(self.url(self.template))

    def url(self, name: str) -> str:
        return with_database(self.server_url, name)

    def _create(self, name: str, template: str | None = None) -> None:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(stmt)

    def fresh(self, *, migrated: bool = True) -> str:
        """A new database, a copy of the migrated template (or empty); returns its URL."""
        self._count += 1
        name = f"{self.prefix}_{self._count}"
        self._create(name, self.template if migrated else None)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def close(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (self.prefix + "%",)
                )
            ]
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        if self._tmp is not None:
            embedded.stop(Path(self._tmp.name))
            self._tmp.cleanup()


@contextmanager
def databases() -> Iterator[TestDatabases]:
    dbs = TestDatabases()
    try:
        yield dbs
    finally:
        dbs.close()
