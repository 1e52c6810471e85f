"""A Dramatiq worker process on the broker, for the crash tests.

python -m tests.integration.broker.worker_process DATABASE_URL LOG_FILE LEASE_S

Its actor `hang_once(tag)` logs "start TAG PID", hangs the first time it sees a
tag (so that the test can kill the process mid-message) and otherwise logs
"end TAG PID". SIGTERM stops the worker gracefully.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import dramatiq

from jobs.broker import PostgresBroker


def _log(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")


def declare(broker: dramatiq.Broker, log_path: Path) -> dramatiq.Actor[[str], None]:
    def hang_once(tag: str) -> None:
        # The marker exists before "start" is logged: a test that kills this process
        # as soon as it reads "start" must never leave the next delivery to hang too.
        marker = log_path.with_name(f"{log_path.name}.{tag}.seen")
        first = not marker.exists()
        marker.touch()
        _log(log_path, f"start {tag} {os.getpid()}")
        if first:
            threading.Event().wait(120)
        _log(log_path, f"end {tag} {os.getpid()}")

    return dramatiq.actor(hang_once, broker=broker, max_retries=0)


def main() -> int:
    url, log_file, lease_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    broker = PostgresBroker(url, lease_s=lease_s, poll_s=0.1)
    declare(broker, log_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    _log(log_file, f"ready {os.getpid()}")
    stop.wait()
    worker.stop(timeout=5000)
    broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
