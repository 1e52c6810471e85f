"""The API as a real process (`hl-analytics api`), tokens for it, and the leak check.

The reliability tests talk to the server the way a client on the network does:
a separate process on 127.0.0.1, so a crash, a hang or a slow answer is the
server's own and not the test's event loop. Its log (JSON lines) is kept in a
file, so a test can also prove that nothing failed unexpectedly on the inside.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.cli import HL_ANALYTICS

SECRET = "reliability-tests-secret-0123456789abcdef01234567"
AUDIENCE = "authenticated"
START_TIMEOUT_S = 30.0

# What an answer to a client must never contain: a stack trace, a driver's or the
# database's vocabulary, a source path, the names of tables.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    "psycopg",
    "postgres",
    "SELECT ",
    " FROM ",
    "INSERT INTO",
    "hl_fills_raw",
    "wallet_day_metrics",
    "global_day_metrics",
    "user_profiles",
    "org_wallets",
    "hl_ingest_cursor",
)
_SOURCE_PATH = re.compile(r"(?:/[\w.-]+)+\.py\b")
# Figures measured by the tests, printed at the end of the run (docs/reliability.md).
FIGURES: dict[str, str] = {}
# Log actions that mean an error the server did not expect (masked for the client).
UNEXPECTED_ACTIONS = ('"action": "request_failed"', '"action": "resolver_failed"')


def record(name: str, value: str) -> None:
    FIGURES[name] = value


def make_token(sub: object, *, secret: str = SECRET, expires_in: int = 3600, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub,
        "aud": AUDIENCE,
        "role": "authenticated",
        "iat": now,
        "exp": now + expires_in,
    }
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(sub)}"}


def leaks(body: str | bytes, sent: str | bytes = b"") -> list[str]:
    """The markers of an internal detail found in `body`, ignoring what the client sent
    itself (an error may quote the client's own input back)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    echo = sent.decode("utf-8", "replace") if isinstance(sent, bytes) else sent
    found = [m for m in LEAK_MARKERS if m in text and m not in echo]
    found += [p for p in _SOURCE_PATH.findall(text) if p not in echo]
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class ApiProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def graphql(self) -> str:
        return self.url + "/graphql"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def unexpected_errors(self) -> list[str]:
        """Log lines of errors the server did not expect (each a masked 500 or field error)."""
        return [
            line for line in self.log().splitlines() if any(a in line for a in UNEXPECTED_ACTIONS)
        ]


def api_env(database_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        {
            "DATABASE_URL": database_url,
            "JWT_SECRET": SECRET,
            "GRAPHIQL": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(overrides)
    return env


@contextmanager
def api_process(
    database_url: str, extra_args: Sequence[str] = (), **settings: str
) -> Iterator[ApiProcess]:
    """`hl-analytics api` on a free port of 127.0.0.1, ready to answer; stopped on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hla-api-") as tmp:
        log_path = Path(tmp) / "api.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [HL_ANALYTICS, "api", "--host", "127.0.0.1", "--port", str(port), *extra_args],
                env=api_env(database_url, **settings),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            api = ApiProcess(f"http://127.0.0.1:{port}", proc, log_path)
            try:
                _wait_ready(api)
                yield api
            finally:
                _stop(proc)


def _wait_ready(api: ApiProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if api.proc.poll() is not None:
            raise RuntimeError(f"the API exited with {api.proc.returncode}:\n{api.log()[-2000:]}")
        try:
            if httpx.get(api.url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the API was not ready in {START_TIMEOUT_S} s:\n{api.log()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


HEALTHY = "{ dashboardSummary { trackedWallets latest { tradeCount totalVolumeUsd } } }"
