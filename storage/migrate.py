"""The migration runner: applies `migrations/NNNN_name.sql` in order.

- Each file runs in its own transaction and is recorded in `schema_migrations`
  with a SHA-256 checksum of its text.
- A session advisory lock serialises runners, so two processes starting at
  once apply each file once; the second finds nothing left to do.
- An applied file whose text changed, or an applied version missing from the
  folder, stops the run with `MigrationError` before anything is applied.
- After the files, monthly fill partitions are ensured ahead of time.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from storage import fills
from storage.db import connect
from storage.errors import MigrationError, first_line

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any fixed 64-bit number; it only has to be the same in every runner.
_LOCK_KEY = 0x686C5F6D69677261

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number in {folder}")
    return found


def migrate(url: str, folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Applies what is pending and returns it; raises MigrationError on drift."""
    migrations = load_migrations(folder)
    conn = connect(url, autocommit=True, application_name="hl-analytics-migrate")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(CREATE_TABLE)
            applied = {row[0]: (row[1], row[2]) for row in conn.execute(SELECT_APPLIED)}
            _check_drift(migrations, applied)
            pending = [m for m in migrations if m.version not in applied]
            for migration in pending:
                _apply(conn, migration)
            with conn.transaction():
                fills.ensure_partitions(conn)
            return pending
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.close()


def _check_drift(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name} that this program does not know: "
                "it was migrated by a newer version; upgrade hl-analytics"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{name}.sql was edited after it was applied; "
                "restore the file and put the change in a new migration"
            )


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(INSERT_APPLIED, (migration.version, migration.name, migration.checksum))
    except psycopg.Error as exc:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name}.sql failed: {first_line(exc)}"
        ) from None
