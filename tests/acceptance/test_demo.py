"""`hl-analytics demo` as a user runs it: endpoint and token, real numbers, clean exit."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.acceptance.test_demo_lifeline import demo_env, free_port
from tests.cli import HL_ANALYTICS, run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

STARTUP_LIMIT_S = 180  # seconds to the endpoint and token: generous, for a loaded machine
SUMMARY = "{ dashboardSummary { trackedWallets latest { tradeCount totalVolumeUsd } } }"


def _read_until(
    proc: subprocess.Popen[str], patterns: list[str], timeout_s: float
) -> dict[str, str]:
    """Reads the demo's output (in a thread, so a silent demo cannot block the test)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    found: dict[str, str] = {}
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < len(patterns):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            raise AssertionError(
                f"demo did not print {patterns} in time; output:\n" + "".join(seen)
            )
        try:
            line = lines.get(timeout=min(0.5, remaining))
        except queue.Empty:
            continue
        seen.append(line)
        for pattern in patterns:
            match = re.match(pattern, line.strip())
            if match:
                found[pattern] = match[1]
    return found


def test_demo_serves_numbers_and_stops_cleanly(tmp_path: Path) -> None:
    env = demo_env(tmp_path / "data")
    started = time.monotonic()
    proc = subprocess.Popen(
        [HL_ANALYTICS, "demo", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    demo = psutil.Process(proc.pid)
    children: list[psutil.Process] = []
    try:
        metrics = r"Metrics \(Prometheus\): \S+ \(API\), (\S+) \(workers\)"
        found = _read_until(
            proc, [r"GraphQL endpoint: (\S+)", r"Bearer token: (\S+)", metrics], STARTUP_LIMIT_S
        )
        assert time.monotonic() - started < STARTUP_LIMIT_S
        endpoint = found[r"GraphQL endpoint: (\S+)"]
        token = found[r"Bearer token: (\S+)"]
        children = demo.children(recursive=True)
        assert len(children) >= 4  # simulator, worker(s), scheduler, api

        response = httpx.post(
            endpoint,
            json={"query": SUMMARY},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        summary = response.json()["data"]["dashboardSummary"]
        assert summary["trackedWallets"] > 0
        assert summary["latest"]["tradeCount"] > 0
        assert float(summary["latest"]["totalVolumeUsd"]) > 0

        api_metrics = httpx.get(endpoint.replace("/graphql", "/metrics"), timeout=10).text
        assert 'hla_api_requests_total{operation="dashboardSummary",status="200"}' in api_metrics
        worker_metrics = httpx.get(found[metrics], timeout=10).text
        ingested = [
            float(line.split()[-1])
            for line in worker_metrics.splitlines()
            if line.startswith("hla_fills_ingested_total")
        ]
        assert ingested and ingested[0] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.stdout is not None
    proc.stdout.close()
    assert proc.returncode == 0
    psutil.wait_procs(children, timeout=30)
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left behind: {[c.cmdline() for c in alive]}"
    # the embedded PostgreSQL was stopped too
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists()
    # Logs went to the log files, as plain JSON lines: no ANSI colour escapes.
    logs = tmp_path / "data" / "logs"
    for name in ("api", "worker", "scheduler", "simulator", "demo"):
        text = (logs / f"{name}.log").read_text()
        assert "\x1b[" not in text and "color_message" not in text, name


def test_ctrl_c_in_the_first_sync_skips_waiting_and_a_second_one_stops_quickly(
    tmp_path: Path,
) -> None:
    """The first Ctrl-C during "First sync" only stops waiting: the demo goes on and
    prints its endpoint. The next stops everything, the workers before the simulator,
    so that nothing retries against an exchange that went away."""
    port = free_port()
    proc = subprocess.Popen(
        [HL_ANALYTICS, "demo", "--port", str(port)],
        env=demo_env(tmp_path / "data"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = _pump(proc)
        _next_line(lines, r"First sync \(Ctrl-C to skip waiting\)", STARTUP_LIMIT_S)
        os.killpg(proc.pid, signal.SIGINT)
        skipped = _next_line(lines, r"Not waiting for the first sync", STARTUP_LIMIT_S)
        assert "status" in skipped
        _next_line(lines, r"Logs: .*Ctrl-C stops everything", STARTUP_LIMIT_S)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)
        stopping = time.monotonic()
        assert proc.wait(timeout=60) == 0
        stop_s = time.monotonic() - stopping
        _next_line(lines, r"^Stopped\.", 10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    worker_log = (tmp_path / "data" / "logs" / "worker.log").read_text()
    # The simulator outlived the workers: no request of theirs was refused.
    assert "ConnectError" not in worker_log and "Connection refused" not in worker_log
    print(f"demo: stopped in {stop_s:.1f} s")


def _pump(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str], pattern: str, timeout_s: float) -> str:
    """The next line of the demo's output that matches `pattern`."""
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no line matching {pattern!r}; output:\n" + "".join(seen))
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        seen.append(line)
        if re.search(pattern, line):
            return line


def test_demo_in_node_mode_follows_the_simulated_node(tmp_path: Path) -> None:
    env = demo_env(tmp_path / "data")
    proc = subprocess.Popen(
        [HL_ANALYTICS, "demo", "--source", "node", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _read_until(
            proc, [r"Node source: following (.*)", r"GraphQL endpoint: (\S+)"], STARTUP_LIMIT_S
        )
        node_files = tmp_path / "data" / "node" / "node_fills_by_block" / "hourly"

        def followed() -> bool:
            status = run_cli("--data-dir", str(tmp_path / "data"), "status", env=env)
            return status.code == 0 and "node_fills_by_block/hourly/" in status.out

        wait_until(followed, 60, "status to show the node source's position")
        assert any(node_files.rglob("*"))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.stdout is not None
    proc.stdout.close()
    assert proc.returncode == 0
