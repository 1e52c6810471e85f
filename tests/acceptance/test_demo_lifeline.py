"""Whatever ends the demo, nothing of it is left behind.

The demo's output is piped into a reader that exits once the demo is up (as
`make demo | tee` does after Ctrl-C, or a closed terminal), then the demo is sent
Ctrl-C, SIGHUP, or SIGKILL. Every process it started, the embedded PostgreSQL
included, must be gone, and its API port free again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.cli import HL_ANALYTICS

pytestmark = pytest.mark.slow

STARTUP_LIMIT_S = 180
# A wallet the simulator does not know: its first sync finds nothing, so the demo is
# up in seconds; what is tested here is how it ends.
QUIET_WALLET = "0x" + "5" * 40
READY = "Ctrl-C stops everything."
# Copies its stdin to a file and exits once the demo says it is up: the demo's
# stdout and stderr then lead nowhere.
READER = f"""
import sys
with open(sys.argv[1], "w") as out:
    for line in sys.stdin:
        out.write(line)
        out.flush()
        if {READY!r} in line:
            break
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env["HL_ANALYTICS_DATA_DIR"] = str(data_dir)
    return env


def wait_for(check: object, timeout_s: float, what: str) -> None:
    """Polls `check()` until it is true; fails after `timeout_s` naming `what`."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def postmaster(data_dir: Path) -> psutil.Process | None:
    try:
        pid = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        return psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return None


def running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("ending", ["ctrl-c", "sighup", "kill -9"])
def test_nothing_outlives_the_demo(tmp_path: Path, ending: str) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    demo = subprocess.Popen(
        [HL_ANALYTICS, "demo", "--port", str(port), "--wallet", QUIET_WALLET],
        env=demo_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a terminal's job would be
    )
    output = tmp_path / "demo.out"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(output)], stdin=demo.stdout)
    assert demo.stdout is not None
    demo.stdout.close()  # the reader is now the pipe's only reader
    processes: list[psutil.Process] = []
    try:
        try:
            reader.wait(timeout=STARTUP_LIMIT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "the demo did not come up:\n" + output.read_text(errors="replace")
            ) from None
        assert READY in output.read_text(), output.read_text()
        processes = psutil.Process(demo.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in processes)
        for part in ("simulate", "worker", "scheduler", "api", "hl_analytics.lifeline"):
            assert part in names, names
        server = postmaster(data_dir)
        assert server is not None and running(server)
        processes.append(server)
        assert not port_is_free(port)

        if ending == "ctrl-c":
            os.killpg(demo.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        elif ending == "sighup":
            os.killpg(demo.pid, signal.SIGHUP)  # what closing the terminal does
        else:
            demo.kill()
        demo.wait(timeout=60)
        wait_for(
            lambda: not any(running(p) for p in processes), 60, "every process of the demo to end"
        )
    finally:
        for proc in processes:
            if running(proc):
                proc.kill()
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    if ending == "ctrl-c":
        assert demo.returncode == 0
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert port_is_free(port)
