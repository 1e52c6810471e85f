"""The module the `dramatiq` command imports in each worker process (`jobs.worker_entry:broker`).

It builds the pipeline from the environment that `hl-analytics worker` prepared:
DATABASE_URL (already resolved, the embedded database included), and the
worker's lease and thread count. No database is touched at import: pools open
on first use, in the worker process.
"""

from __future__ import annotations

import os

from hl_analytics.settings import Settings
from jobs.app import build
from jobs.worker import LEASE_ENV, THREADS_ENV

_settings = Settings.from_env()
if not _settings.database_url:
    raise RuntimeError(
        "jobs.worker_entry is started by `hl-analytics worker`, which sets DATABASE_URL"
    )

pipeline = build(
    _settings,
    _settings.database_url,
    lease_s=float(os.environ.get(LEASE_ENV, "30")),
    pool_size=int(os.environ.get(THREADS_ENV, "4")) + 1,
)
broker = pipeline.broker
