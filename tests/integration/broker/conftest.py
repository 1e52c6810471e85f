from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobs.broker import PostgresBroker
from tests.integration.broker.support import make_broker


@pytest.fixture
def broker(db_url: str) -> Iterator[PostgresBroker]:
    instance = make_broker(db_url)
    yield instance
    instance.close()
