"""`hl-analytics worker`: Dramatiq worker processes for the pipeline's actors.

Dramatiq's own command-line runner (`dramatiq.cli`) does the process work — it
forks the worker processes, restarts nothing silently (one dying stops all, so a
supervisor notices), and turns SIGTERM or Ctrl-C into a graceful stop: each
process stops claiming, hands back messages it claimed but had not started, and
lets running ones finish for up to `--shutdown-timeout` seconds. A message still
running after that (or in a process killed with SIGKILL) keeps its lease until
it expires, and is then delivered again (after at most `--lease` + `--lease`/3
seconds). Ingest and rollups are idempotent, so a second delivery is harmless.
"""

from __future__ import annotations

import os

from dramatiq.cli import main, make_argument_parser

from hl_core.errors import HLAnalyticsError
from hl_core.settings import Settings
from jobs import prometheus
from jobs.errors import check_positive
from storage import embedded
from storage.db import connection

LEASE_ENV = "HL_ANALYTICS_WORKER_LEASE_S"
THREADS_ENV = "HL_ANALYTICS_WORKER_THREADS"
ENTRY = "jobs.worker_entry:broker"


class WorkerOptionInvalid(HLAnalyticsError):
    """A worker option is out of range."""


def run_worker(
    settings: Settings,
    *,
    processes: int,
    threads: int,
    lease_s: float,
    shutdown_s: float,
    metrics_port: int | None,
    metrics_host: str,
) -> int:
    for name, value in (
        ("processes", processes),
        ("threads", threads),
        ("lease", lease_s),
        ("shutdown-timeout", shutdown_s),
    ):
        check_positive(name, value, WorkerOptionInvalid)
    # Resolved here, once: with no DATABASE_URL this starts the embedded server,
    # which this process keeps alive while its forked workers use it.
    os.environ["DATABASE_URL"] = embedded.database_url(settings)
    # A wrong DATABASE_URL is reported now, in one line; an outage after start is
    # survived instead (the pools reconnect).
    with connection(os.environ["DATABASE_URL"]):
        pass
    if metrics_port is not None:
        if not 0 < metrics_port < 65536:
            raise WorkerOptionInvalid(f"--metrics-port must be 1..65535 (got {metrics_port})")
        prometheus.prepare(metrics_port, metrics_host)
    os.environ[LEASE_ENV] = str(lease_s)
    os.environ[THREADS_ENV] = str(threads)
    print(
        f"worker: {processes} process(es) × {threads} thread(s) on queues ingest and rollups; "
        "SIGTERM or Ctrl-C stops gracefully",
        flush=True,
    )
    dramatiq_args = make_argument_parser().parse_args(  # type: ignore[no-untyped-call]
        [
            ENTRY,
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(int(shutdown_s * 1000)),
            "--skip-logging",
        ]
    )
    return int(main(dramatiq_args) or 0)  # type: ignore[no-untyped-call]
