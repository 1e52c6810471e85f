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


def test_queued_legacy_rollup_wallet_day_messages_become_pending_wallet_days(
    empty_db: str, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) < 9:
            shutil.copy(path, before / path.name)
    migrate(empty_db, before)
    a, b = "0x" + "a" * 40, "0x" + "b" * 40

    def legacy(address: str, day: str, state: str, batches: list[str]) -> dict[str, object]:
        return {
            "message": {
                "queue_name": "rollups",
                "actor_name": "rollup_wallet_day",
                "args": [address, day],
                "kwargs": {},
                "options": {},
                "message_id": f"{address}-{day}",
                "message_timestamp": 0,
            },
            "state": state,
            "batches": batches,
        }

    with psycopg.connect(empty_db) as conn:
        conn.execute("INSERT INTO wallets (address) VALUES (%s), (%s)", (a, b))
        for job in (
            legacy(a, "2026-11-02", "queued", ["sync:1"]),
            legacy(b, "2026-11-02", "running", []),
            legacy(a, "2026-11-03", "queued", ["sync:2"]),
            legacy(a, "2026-11-01", "done", []),
        ):
            message = psycopg.types.json.Jsonb(job["message"])
            conn.execute(
                "INSERT INTO jobs (message_id, queue, actor, message, state, batches) "
                "VALUES (%s, 'rollups', 'rollup_wallet_day', %s, %s, %s)",
                (job["message"]["message_id"], message, job["state"], job["batches"]),  # type: ignore[index]
            )
    applied = migrate(empty_db)
    assert applied[0].version == 9  # and every later one
    with psycopg.connect(empty_db) as conn:
        pending = conn.execute(
            "SELECT p.day::text, w.address, p.batches FROM rollup_pending p "
            "JOIN wallets w ON w.id = p.wallet_id ORDER BY 1, 2"
        ).fetchall()
        jobs = conn.execute(
            "SELECT actor, state, dedup_key, message->'args', batches FROM jobs "
            "ORDER BY dedup_key NULLS FIRST"
        ).fetchall()
    assert pending == [
        ("2026-11-02", a, ["sync:1"]),
        ("2026-11-02", b, []),
        ("2026-11-03", a, ["sync:2"]),
    ]
    assert jobs == [
        ("rollup_wallet_day", "done", None, [a, "2026-11-01"], []),
        (
            "rollup_wallet_days",
            "queued",
            "rollup_wallet_days:2026-11-02",
            ["2026-11-02"],
            ["sync:1"],
        ),
        (
            "rollup_wallet_days",
            "queued",
            "rollup_wallet_days:2026-11-03",
            ["2026-11-03"],
            ["sync:2"],
        ),
    ]
