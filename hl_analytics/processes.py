"""Child processes of `hl-analytics demo`: started, watched, and stopped in order.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the
demo, which then stops the children itself — one at a time, newest first (the
API, the scheduler and the workers stop before the exchange they talk to), each
with SIGTERM to its whole process group, then SIGKILL after a grace period — and
no process is left behind. When the demo dies without stopping them, its
`Lifeline` (hl_analytics/lifeline.py) does.
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

from hl_analytics.lifeline import Lifeline, die_with_parent
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
    lifeline: Lifeline | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, args: Sequence[str], *, log_to_file: bool = True, watch: bool = True
    ) -> subprocess.Popen[bytes]:
        """Starts `hl-analytics ARGS` in a session of its own, its output in NAME.log
        (or its stdout on the demo's own, for a child that talks to the user). A child
        not watched may exit without failing `check`; `stop` it when done."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logfile = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [cli_executable(), *args],
            env=dict(self.env),
            stdout=logfile if log_to_file else None,
            stderr=subprocess.STDOUT if log_to_file else logfile,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # only prctl(), before exec
        )
        logfile.close()
        if self.lifeline is not None:
            self.lifeline.group(proc.pid)
        if watch:
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

    def stop(self, name: str, proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
        """SIGTERM to the child's process group, SIGKILL after `grace_s`; waits for both
        the child and whatever it started in its group."""
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
        _signal_group(proc, signal.SIGKILL)  # its group's stragglers, if any
        proc.wait()
        if self.lifeline is not None:
            self.lifeline.gone(proc.pid)
        self.children = [(n, p) for n, p in self.children if p is not proc]

    def stop_all(self, grace_s: float = 10.0) -> None:
        """Newest first, one after the other: consumers go before what they consume."""
        for name, proc in reversed(list(self.children)):
            self.stop(name, proc, grace_s)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
