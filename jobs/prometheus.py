"""Prometheus metrics of worker processes (`hl-analytics worker --metrics-port P`).

Dramatiq's own Prometheus middleware does the plumbing: it points every worker
process at one multiprocess folder and forks one exposition server that sums
them (its message counters and durations come with it). This module adds the
pipeline's own figures to the same registry (see hl_core.telemetry) and a
gauge of the oldest queued job's age, refreshed by each worker process.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading

import dramatiq
from dramatiq.middleware import Middleware

from storage import jobs as job_store
from storage.db import connection
from storage.errors import StorageError

log = logging.getLogger(__name__)

PORT_ENV = "HL_ANALYTICS_WORKER_METRICS_PORT"
QUEUE_AGE_EVERY_S = 15.0


def prepare(port: int, host: str) -> None:
    """Sets what Dramatiq's Prometheus middleware reads at import, before it is imported."""
    os.environ[PORT_ENV] = str(port)
    # Dramatiq reads these lower-case names.
    os.environ["dramatiq_prom_port"] = str(port)  # noqa: SIM112
    os.environ["dramatiq_prom_host"] = host  # noqa: SIM112
    folder = tempfile.mkdtemp(prefix="hla-worker-metrics-")
    os.environ["dramatiq_prom_db"] = folder  # noqa: SIM112
    # Set before any worker process imports prometheus_client (it reads it then),
    # so the pipeline's metrics land in the folder the exposition server sums.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def middleware(database_url: str) -> list[Middleware]:
    """The metrics middleware, when `hl-analytics worker` was asked for metrics."""
    if not os.environ.get(PORT_ENV):
        return []
    from dramatiq.middleware.prometheus import Prometheus

    return [Prometheus(), QueueAge(database_url)]


class QueueAge(Middleware):
    """Refreshes the oldest-queued-job gauge from a daemon thread of each worker process."""

    def __init__(self, database_url: str, every_s: float = QUEUE_AGE_EVERY_S) -> None:
        self.database_url = database_url
        self.every_s = every_s
        self.stopped = threading.Event()

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        threading.Thread(target=self._run, name="queue-age", daemon=True).start()

    def before_process_stop(self, broker: dramatiq.Broker) -> None:
        self.stopped.set()

    def _run(self) -> None:
        # Imported here: prometheus_client must not be loaded before prepare() ran.
        from hl_core import telemetry

        gauge = telemetry.worker_metrics().oldest_queued_age
        while not self.stopped.is_set():
            try:
                with connection(self.database_url, autocommit=True) as conn:
                    age = job_store.oldest_queued_age_s(conn)
                gauge.set(age or 0.0)
            except StorageError as exc:
                log.warning("cannot read the queue's age: %s", exc.message)
            self.stopped.wait(self.every_s)

    def __repr__(self) -> str:
        return f"QueueAge(every_s={self.every_s})"
