"""Freshness of the node source: a fill appended to the live file → visible in the API.

The whole system runs as it would in production, each part its own process:
`hl-analytics node-ingest` (default `--poll` 0.5 s) follows a live by-block file
that this benchmark appends one block to every 100 ms (empty blocks, as a node
writes them); one `hl-analytics worker` runs the rollups; `hl-analytics api`
serves GraphQL. For each sample a block holding one new fill of a tracked
wallet is appended, and `globalMetrics(range: D7)` is asked every 20 ms until
today's `tradeCount` counts it. Figures: p50 and p99 of that delay (goal: p99
under 5 s with the default poll interval), and the RSS of `node-ingest` at the
end. The org-day rollup waits `jobs.actors.GLOBAL_ROLLUP_DELAY_MS` (1 s) to merge
bursts: that is part of the delay, by design.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.bench_api import SECRET, USER, _free_port, _token
from bench.common import BenchContext, Result
from hlsim import nodefiles
from storage import markets, orgs
from storage.db import connection

WALLET = "0x" + "f1" * 20
BLOCK_EVERY_S = 0.1
QUERY = "{ globalMetrics(range: D7) { day tradeCount } }"


class LiveFile:
    """Appends one block every 100 ms of wall time, with the fills queued for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.block = int(time.time() * 1000) // 100
        self.pending: list[dict[str, Any]] = []
        self.written_at: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.tid = 5_000_000_000

    def add_fill(self) -> int:
        with self.lock:
            self.tid += 1
            self.pending.append({"tid": self.tid})
            return self.tid

    def write_due(self) -> None:
        now_block = int(time.time() * 1000) // 100
        while self.block <= now_block:
            time_ms = self.block * 100 + 99
            with self.lock:
                pending, self.pending = self.pending, []
            events = [(WALLET, _fill(time_ms, p["tid"])) for p in pending]
            path = self.root / nodefiles.hour_relpath(time_ms // 3_600_000 * 3_600_000)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.write(nodefiles.block_line(self.block, time_ms, events))
            written = time.monotonic()
            for p in pending:
                self.written_at[p["tid"]] = written
            self.block += 1

    def run(self) -> None:
        while not self.stop.wait(BLOCK_EVERY_S / 2):
            self.write_due()


def _fill(time_ms: int, tid: int) -> dict[str, Any]:
    return {
        "coin": "BTC", "px": "100000.0", "sz": "0.01", "side": "B", "time": time_ms,
        "startPosition": "0.0", "dir": "Open Long", "closedPnl": "0.0", "hash": "0x" + "cd" * 32,
        "oid": tid, "crossed": True, "fee": "0.45", "tid": tid, "feeToken": "USDC",
    }  # fmt: skip


def _trade_count(port: int, token: str) -> int:
    body = json.dumps({"query": QUERY}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        days = json.loads(answer.read())["data"]["globalMetrics"]
    return int(days[-1]["tradeCount"])


def _rss_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def run(ctx: BenchContext) -> list[Result]:
    samples = ctx.scale(40, 6)
    url = ctx.database()
    with connection(url) as conn:
        org = orgs.create_org(conn, "Freshness")
        orgs.track_wallets(conn, org.id, [WALLET])
        orgs.add_user(conn, USER, org.id, "viewer")
        markets.record(conn, ["BTC"])
        markets.resolve(conn, [markets.Resolution("BTC", "BTC", "USDC", "BTC")])
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
    exe = str(Path(sys.executable).with_name("hl-analytics"))
    port = _free_port()
    token = _token()
    with tempfile.TemporaryDirectory(prefix="hla-bench-fresh-") as tmp:
        live = LiveFile(Path(tmp))
        live.write_due()
        writer = threading.Thread(target=live.run, daemon=True)
        writer.start()
        procs = [
            subprocess.Popen([exe, "api", "--port", str(port)], env=env),
            subprocess.Popen([exe, "worker", "--processes", "1", "--threads", "2"], env=env),
            subprocess.Popen([exe, "node-ingest", "--node-dir", tmp], env=env),
        ]
        delays: list[float] = []
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    seen = _trade_count(port, token)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the API did not start") from None
                    time.sleep(0.2)
            for _ in range(samples):
                tid = live.add_fill()
                deadline = time.monotonic() + 60
                while _trade_count(port, token) <= seen:
                    if time.monotonic() > deadline:
                        raise RuntimeError("a fill appended to the node file never became visible")
                    time.sleep(0.02)
                delays.append(time.monotonic() - live.written_at[tid])
                seen += 1
                time.sleep(0.3)  # the next fill lands in a later block
            rss = _rss_mb(procs[2].pid)
        finally:
            live.stop.set()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
    delays.sort()
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, round(0.99 * (len(delays) - 1)))]
    return [
        Result(
            f"node freshness: fill appended to the live file → globalMetrics, p50 "
            f"({len(delays)} samples; node-ingest RSS {rss:.0f} MB)",
            "s",
            p50,
            "goal for p99",
            5.0,
            "p99 < 5 s",
        ),
        Result(
            "node freshness: fill appended to the live file → globalMetrics, p99",
            "s",
            p99,
            "goal for p99",
            5.0,
            "p99 < 5 s",
        ),
    ]
