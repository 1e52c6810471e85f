"""The demo's children die with it, whatever happens to it.

`hl-analytics demo` starts the simulator, workers, the scheduler and the API in
sessions of their own (so that Ctrl-C reaches only the demo, which stops them in
order). The price of their own sessions is that nothing stops them when the
demo itself dies without cleaning up: killed with SIGKILL, its terminal closed,
or its clean-up cut short. Three things make sure they go anyway:

- **The death signal.** On Linux each child asks the kernel (`PR_SET_PDEATHSIG`)
  for SIGTERM as soon as its parent dies.
- **The guardian.** A small process (`python -m hl_analytics.lifeline`), in a
  session of its own too, reads a pipe whose only writer is the demo. The demo
  tells it every process group it starts (`group PID`), every one it stopped
  itself (`gone PID`), and the embedded database's folder (`pgdata PATH`).
  When the pipe closes without `done` — however the demo ended — the guardian
  stops the groups still alive (SIGTERM, newest first, SIGKILL after a grace
  period: this also reaches a child's own children, which the death signal does
  not) and stops the embedded PostgreSQL unless another living process uses it.
- **Output that cannot break clean-up.** `say` writes a line for the user and,
  once the reader of stdout or stderr has gone (`make demo | tee`, then Ctrl-C),
  sends the rest to /dev/null instead of raising `BrokenPipeError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TextIO

_PR_SET_PDEATHSIG = 1
GRACE_S = 10.0


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return preexec


def _silence(stream: TextIO) -> None:
    """Points a broken standard stream at /dev/null, for this process and its children."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def say(*parts: object, err: bool = False, end: str = "\n") -> None:
    """print(), flushed, that never raises: a reader that went away silences the stream."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(*parts, file=stream, end=end, flush=True)
    except (OSError, ValueError):
        _silence(stream)


class Lifeline:
    """The demo's side of the guardian's pipe."""

    def __init__(self, pipe: IO[str] | None, guardian: subprocess.Popen[bytes] | None) -> None:
        self._pipe = pipe
        self.guardian = guardian

    @classmethod
    def start(cls) -> Lifeline:
        read_fd, write_fd = os.pipe()
        try:
            guardian = subprocess.Popen(
                [sys.executable, "-m", __name__, str(os.getpid())],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            os.close(write_fd)
            return cls(None, None)
        finally:
            os.close(read_fd)
        return cls(os.fdopen(write_fd, "w", buffering=1), guardian)

    def _tell(self, line: str) -> None:
        if self._pipe is None:
            return
        try:
            self._pipe.write(line + "\n")
        except (OSError, ValueError):
            self._pipe = None

    def group(self, pid: int) -> None:
        self._tell(f"group {pid}")

    def gone(self, pid: int) -> None:
        self._tell(f"gone {pid}")

    def pgdata(self, path: Path) -> None:
        self._tell(f"pgdata {path}")

    def close(self) -> None:
        """The demo cleaned up itself: the guardian exits without doing anything."""
        self._tell("done")
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()
            self._pipe = None
        if self.guardian is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.guardian.wait(5)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_groups(groups: list[int], grace_s: float = GRACE_S) -> None:
    """SIGTERM to each group, newest first, each given time to stop; SIGKILL after that."""
    for pgid in reversed(groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def guard(demo_pid: int, lines: IO[str]) -> None:
    """Reads the demo's pipe until it closes; then cleans up after it unless told `done`."""
    groups: list[int] = []
    pgdata: Path | None = None
    done = False
    for line in lines:
        word, _, value = line.strip().partition(" ")
        if word == "group":
            groups.append(int(value))
        elif word == "gone" and int(value) in groups:
            groups.remove(int(value))
        elif word == "pgdata":
            pgdata = Path(value)
        elif word == "done":
            done = True
    if done:
        return
    stop_groups(groups)
    if pgdata is not None:
        from storage.embedded import abandon

        abandon(pgdata, demo_pid)


def main(argv: list[str]) -> int:
    # Neither the terminal's signals nor its closing reach this process's decisions:
    # only the pipe does.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    guard(int(argv[0]), sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
