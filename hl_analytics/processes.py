"""Child processes of `hl-analytics demo`: started, watched, and stopped in order.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the
demo, which then stops the children itself — newest first, SIGTERM, then
SIGKILL after a grace period — and no process is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hl_core.errors import HLAnalyticsError

log = logging.getLogger(__name__)


class ChildFailed(HLAnalyticsError):
    """A process started by the demo exited or did not become ready."""


def cli_executable() -> str:
    """The `hl-analytics` script beside the running interpreter (the virtualenv's)."""
    candidate = Path(sys.executable).with_name("hl-analytics")
    return str(candidate) if candidate.exists() else "hl-analytics"


@dataclass
class Supervisor:
    env: Mapping[str, str]
    log_dir: Path
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logfile = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [cli_executable(), *args],
            env=dict(self.env),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logfile.close()
        self.children.append((name, proc))
        log.info("started %s (pid %s)", name, proc.pid, extra={"action": "child_started"})
        return proc

    def check(self) -> None:
        for name, proc in self.children:
            code = proc.poll()
            if code is not None:
                raise ChildFailed(
                    f"{name} exited with code {code}: see {self.log_dir / (name + '.log')}"
                )

    def wait_http(self, name: str, url: str, timeout_s: float = 60.0) -> None:
        """Waits until `url` answers (any HTTP status below 500)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ChildFailed(
            f"{name} did not answer at {url} within {timeout_s:.0f} s: "
            f"see {self.log_dir / (name + '.log')}"
        )

    def stop_all(self, grace_s: float = 10.0) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.children.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
