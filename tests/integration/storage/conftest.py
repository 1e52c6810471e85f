"""Fixtures of the storage tests: a database with no migration applied, and a way to
bring it to the schema of an earlier release (the upgrade tests)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage.migrate import MIGRATIONS_DIR, migrate
from tests.dbs import TestDatabases

# Applies to the database every migration numbered below the given one ("0012").
MigrateBefore = Callable[[str, str], None]


@pytest.fixture
def empty_db(dbs: TestDatabases) -> Iterator[str]:
    url = dbs.fresh(migrated=False)
    yield url
    dbs.drop(url)


@pytest.fixture
def migrate_before(tmp_path: Path) -> MigrateBefore:
    def apply(url: str, version: str) -> None:
        before = tmp_path / f"before-{version}"
        before.mkdir()
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.name < version:
                shutil.copy(path, before / path.name)
        migrate(url, before)

    return apply
