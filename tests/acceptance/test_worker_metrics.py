"""`hl-analytics worker --metrics-port`: one Prometheus endpoint for all worker processes."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from datetime import date

import httpx
import psycopg

from hl_core.settings import Settings
from jobs import actors
from jobs.pipeline import build
from storage import orgs
from tests.cli import HL_ANALYTICS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(url: str, needles: list[str], timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = httpx.get(url, timeout=2).text
            if all(n in text for n in needles):
                return text
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{needles} not all in the metrics:\n{text[-3000:]}")


def test_worker_processes_expose_pipeline_metrics(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        # an old queued job, so the gauge of the oldest queued job has something to show
        conn.execute(
            "INSERT INTO jobs (message_id, queue, actor, message, run_at) "
            "VALUES ('old', 'nowhere', 'nobody', '{}', now() - interval '1 hour')"
        )
    pipeline = build(Settings.from_env({}), db_url)
    try:
        with pipeline.pool.connection() as conn:
            actors.send_global_rollups(pipeline, conn, [org.id], [date(2026, 11, 2)])
    finally:
        pipeline.close()

    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url}
    worker = subprocess.Popen(
        [HL_ANALYTICS, "worker", "--processes", "2", "--threads", "2", "--metrics-port", str(port)],
        env=env,
    )
    try:
        text = _scrape(
            f"http://127.0.0.1:{port}/",
            ['hla_rollup_seconds_count{level="org_day"}', "dramatiq_messages_total"],
        )
        age = next(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("hla_jobs_oldest_queued_seconds")
        )
        assert age >= 3000
    finally:
        worker.terminate()
        worker.wait(timeout=60)
