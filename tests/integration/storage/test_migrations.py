"""Migrations: apply to empty, no-op twice, safe from two processes, refuse edits."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from storage.errors import MigrationError
from storage.migrate import MIGRATIONS_DIR, load_migrations, migrate
from tests.dbs import TestDatabases

EXPECTED_TABLES = {
    "orgs",
    "wallets",
    "org_wallets",
    "user_profiles",
    "hl_fills_raw",
    "hl_fills_raw_default",
    "hl_fills_quarantine",
    "hl_markets",
    "hl_ingest_cursor",
    "wallet_day_metrics",
    "global_day_metrics",
    "rollup_pending",
    "jobs",
    "job_workers",
    "schema_migrations",
}


@pytest.fixture
def empty_db(dbs: TestDatabases):  # type: ignore[no-untyped-def]
    url = dbs.fresh(migrated=False)
    yield url
    dbs.drop(url)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


def test_migrate_empty_database_then_noop(empty_db: str) -> None:
    applied = migrate(empty_db)
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert _tables(empty_db) >= EXPECTED_TABLES
    assert migrate(empty_db) == []


def test_two_processes_migrate_at_once(empty_db: str) -> None:
    code = "import sys; from storage.migrate import migrate; print(len(migrate(sys.argv[1])))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, empty_db], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert outputs == ["0", str(len(load_migrations()))]
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert row == (len(load_migrations()),)


def test_edited_applied_migration_is_refused(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    migrate(empty_db, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrate(empty_db, folder)


def test_unknown_applied_migration_is_refused(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "9999_later.sql").write_text("CREATE TABLE later (id int);")
    migrate(empty_db, folder)
    (folder / "9999_later.sql").unlink()
    with pytest.raises(MigrationError, match="does not know"):
        migrate(empty_db, folder)


def test_failing_migration_rolls_back_and_says_which(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "9998_broken.sql").write_text("CREATE TABLE half (id int); SELEC broken;")
    with pytest.raises(MigrationError, match=r"9998_broken\.sql failed"):
        migrate(empty_db, folder)
    assert "half" not in _tables(empty_db)
