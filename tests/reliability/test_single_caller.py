"""Issue 13 against a real `hl-analytics api` process: `/metrics` on a port of its own,
and a 32 MB header refused before any work while other clients are served."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.dbs import TestDatabases
from tests.integration.graph.seed import seed
from tests.reliability.api_support import (
    HEALTHY,
    api_process,
    bearer,
    free_port,
    record,
)
from tests.shared_services import UNTHROTTLED


@pytest.fixture(scope="module")
def db(dbs: TestDatabases) -> Iterator[str]:
    url = dbs.fresh()
    seed(url)
    try:
        yield url
    finally:
        dbs.drop(url)


def test_metrics_on_a_port_of_its_own(db: str) -> None:
    port = free_port()
    with api_process(db, extra_args=("--metrics-port", str(port))) as api:
        assert (
            httpx.post(api.graphql, json={"query": HEALTHY}, headers=bearer("alice")).status_code
            == 200
        )
        assert httpx.get(api.url + "/metrics").status_code == 404
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert "hla_api_requests_total" in scraped.text
    with api_process(db) as api:  # by default, on the API's port
        assert "hla_api_requests_total" in httpx.get(api.url + "/metrics").text


ATTACKER = r"""
import socket, sys
host, port = "127.0.0.1", int(sys.argv[1])
statuses = []
for _ in range(2):
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nAuthorization: Bearer " + b"a" * (32 * 1024 * 1024) + b"\r\n\r\n{}"
    )
    with socket.create_connection((host, port)) as sock:
        try:
            sock.sendall(head)
        except OSError:
            pass
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    statuses.append(answer.split(b" ")[1].decode() if answer else "none")
print(" ".join(statuses))
"""


def test_huge_headers_are_refused_without_stalling_others(db: str) -> None:
    # The normal client asks as fast as it can from one token: not what is measured here.
    with api_process(db, **UNTHROTTLED) as api:
        port = api.url.rsplit(":", 1)[1]
        # Another process, so that building and sending 32 MB holds no lock of this one.
        attacker = subprocess.Popen(
            [sys.executable, "-c", ATTACKER, port], stdout=subprocess.PIPE, text=True
        )
        slowest, normal = 0.0, 0
        with httpx.Client(timeout=30) as client:
            while attacker.poll() is None:
                sent = time.perf_counter()
                response = client.post(
                    api.graphql, json={"query": HEALTHY}, headers=bearer("alice")
                )
                assert response.status_code == 200
                slowest, normal = max(slowest, time.perf_counter() - sent), normal + 1
        statuses = attacker.communicate()[0].split()
        record(
            "32 MB Authorization headers",
            f"answered {statuses}; slowest of {normal} normal requests meanwhile "
            f"{slowest * 1000:.0f} ms",
        )
        assert statuses == ["431", "431"]
