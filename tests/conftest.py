from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from hl_core.settings import SETTINGS
from tests.dbs import TestDatabases, databases


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell must not leak settings into tests."""
    for setting in SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)


@pytest.fixture(scope="session")
def dbs() -> Iterator[TestDatabases]:
    with databases() as instance:
        yield instance


@pytest.fixture
def db_url(dbs: TestDatabases) -> Iterator[str]:
    url = dbs.fresh()
    yield url
    dbs.drop(url)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as connection:
        yield connection
