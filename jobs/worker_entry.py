"""The module the `dramatiq` command imports in each worker process (`jobs.worker_entry:broker`).

It builds the pipeline from the environment that `hl-analytics worker` prepared:
DATABASE_URL (already resolved, the embedded database included), and the
worker's lease and thread count. No database is touched at import: pools open
on first use, in the worker process.

Dramatiq's worker process stops gracefully on its first SIGTERM and dies on a
second. A supervisor that signals the whole process group (systemd's default,
`hl-analytics demo`) makes every worker process get SIGTERM twice at once:
directly, and forwarded by Dramatiq's main process. So a second SIGTERM within
`ECHO_WINDOW_S` of the first is taken as that echo and ignored; a later one
still kills.
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType

from hl_core.settings import Settings
from jobs import prometheus
from jobs.pipeline import build
from jobs.worker import LEASE_ENV, THREADS_ENV

ECHO_WINDOW_S = 2.0


def _absorb_echoed_sigterm() -> None:
    original = signal.getsignal(signal.SIGTERM)
    if not callable(original):
        return
    first: float | None = None

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal first
        now = time.monotonic()
        if first is not None and now - first < ECHO_WINDOW_S:
            return
        first = first if first is not None else now
        original(signum, frame)

    signal.signal(signal.SIGTERM, handler)


_absorb_echoed_sigterm()
_settings = Settings.from_env()
if not _settings.database_url:
    raise RuntimeError(
        "jobs.worker_entry is started by `hl-analytics worker`, which sets DATABASE_URL"
    )

if LEASE_ENV not in os.environ or THREADS_ENV not in os.environ:
    raise RuntimeError(
        f"jobs.worker_entry is started by `hl-analytics worker`, which sets {LEASE_ENV} "
        f"and {THREADS_ENV}"
    )
pipeline = build(
    _settings,
    _settings.database_url,
    lease_s=float(os.environ[LEASE_ENV]),
    pool_size=int(os.environ[THREADS_ENV]) + 1,
)
broker = pipeline.broker
for extra in prometheus.middleware(_settings.database_url):
    broker.add_middleware(extra)
