"""API throughput and latency: GraphQL beside a bare Starlette endpoint, same payload.

Each server is one uvicorn worker process (pinned to one core when there are
two or more); the load comes from `wrk` pinned to another core, with 64
keep-alive connections. Figures:

- a cached `dashboardSummary` (the answer comes from the response cache, auth
  still checked on every request) against a bare Starlette endpoint returning the
  same JSON: target ≥ 40% of its requests/s and p99 < 20 ms;
- an uncached `globalMetrics(range: D90)` (every request runs GraphQL and its
  SQL) against the bare endpoint returning that payload.

`wrk` is a Debian/Ubuntu package (`apt-get install wrk`; macOS: `brew install
wrk`). Without it a small asyncio client in a separate process is used instead,
and the table says so: it saturates sooner than wrk, so its ratios are kinder.

These figures are of the request path, so the server runs with fair share's
limits raised beyond reach (64 connections of one token would otherwise be
refused by design); `bench_fair_share.py` measures the limits themselves, with
their defaults (kind `graphql-fair`).

python -m bench.bench_api serve KIND PORT DATABASE_URL PAYLOAD_FILE  (used by run())
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import BenchContext, Goal, Result
from storage import orgs, rollups
from storage.db import connection
from storage.fills import Fill, day_bounds_ms, insert_fills

CONNECTIONS = 64
UNTHROTTLED = {
    "HL_ANALYTICS_CALLER_RPS": "1000000",
    "HL_ANALYTICS_CALLER_BURST": "1000000",
    "HL_ANALYTICS_ORG_RPS": "1000000",
    "HL_ANALYTICS_ORG_BURST": "1000000",
    "HL_ANALYTICS_CALLER_CONCURRENCY": "100000",
    "HL_ANALYTICS_ORG_CONCURRENCY": "100000",
    "HL_ANALYTICS_CALLER_COST_PER_S": "1000000000",
    "HL_ANALYTICS_CALLER_COST_BURST": "1000000000",
}
SECRET = "bench-api-secret-0123456789abcdef0123456789"
USER = "bench-user"
SUMMARY = "{ dashboardSummary { day latest { day dau tradeCount spotVolumeUsd perpVolumeUsd "
SUMMARY += "totalVolumeUsd feesUsd realizedPnlUsd avgVolumePerUser } previous { day dau "
SUMMARY += "tradeCount totalVolumeUsd } trackedWallets lastSyncedAt } }"
GLOBAL = "{ globalMetrics(range: D90) { day dau tradeCount spotVolumeUsd perpVolumeUsd "
GLOBAL += "totalVolumeUsd feesUsd realizedPnlUsd avgVolumePerUser } }"


# ---------------------------------------------------------------- data set


def _seed(url: str, wallets: int, fills_per_day: int) -> None:
    """90 days of fills for the org's wallets, rolled up by the pipeline's statements."""
    today = datetime.now(UTC).date()
    addresses = [f"0x{n:040x}" for n in range(1, wallets + 1)]
    with connection(url) as conn:
        org = orgs.create_org(conn, "Bench")
        tracked, _ = orgs.track_wallets(conn, org.id, addresses)
        orgs.add_user(conn, USER, org.id, "viewer")
        days = [today - timedelta(days=ago) for ago in range(90)]
        for w in tracked:
            batch = []
            for day in days:
                start, _ = day_bounds_ms(day)
                for i in range(fills_per_day):
                    batch.append(_fill(start + 1000 * (i + 1), w.id * 100_000 + i, day.toordinal()))
            insert_fills(conn, w.id, batch)
        for day in days:
            rollups.rebuild_all_wallet_days(conn, day)
            rollups.rebuild_org_day(conn, org.id, day)


def _fill(time_ms: int, tid: int, oid: int) -> Fill:
    spot = tid % 3 == 0
    return Fill(
        time=time_ms,
        tid=tid,
        oid=oid,
        coin="@107" if spot else "BTC",
        side="B" if tid % 2 else "A",
        px=Decimal("43210.5") + tid % 97,
        sz=Decimal("0.0125") * (1 + tid % 7),
        dir="Buy" if spot else "Open Long",
        start_position=Decimal("0"),
        closed_pnl=Decimal(tid % 11 - 5) / 4,
        fee=Decimal("0.0321"),
        fee_token="USDC",
        builder_fee=None,
        hash="0x" + "ab" * 32,
        crossed=True,
    )


def _token(user: str = USER) -> str:
    import jwt

    now = int(time.time())
    claims = {
        "sub": user,
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 86_400,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


# ---------------------------------------------------------------- servers


def _serve(kind: str, port: int, database_url: str, payload_file: str) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from graph.server import serve

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    app: Any
    if kind == "bare":
        payload = json.loads(Path(payload_file).read_text())

        async def bare(request: Request) -> JSONResponse:
            return JSONResponse(payload)

        app = Starlette(routes=[Route("/graphql", bare, methods=["GET", "POST"])])
    else:
        from graph.app import create_app
        from hl_core.settings import Settings

        limits = {} if kind == "graphql-fair" else UNTHROTTLED
        settings = Settings.from_env({"JWT_SECRET": SECRET, "GRAPHIQL": "0", **limits})
        app = create_app(settings, database_url, cache_enabled=kind != "graphql-uncached")
    logging.basicConfig(level=logging.WARNING)
    serve(app, "127.0.0.1", port)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, kind: str, database_url: str, payload_file: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        args = ["serve", kind, str(self.port), database_url, payload_file]
        self.process = subprocess.Popen([sys.executable, "-m", "bench.bench_api", *args])
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {kind} server did not start") from None
                time.sleep(0.05)

    def post(self, query: str, token: str) -> bytes:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
            return body

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


# ---------------------------------------------------------------- load


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, body: str, token: str, duration: int, connections: int) -> Load:
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency"]
    command += ["-s", f.name, url]
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        command = ["taskset", "-c", "1", *command]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"the load run had errors:\n{out}")

    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        return float(match.group(1)) * _UNITS[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    return Load(float(rps.group(1)), latency("50"), latency("99"))


async def _client_load(port: int, request: bytes, duration: float, connections: int) -> Load:
    """A keep-alive HTTP/1.1 client without parsing beyond Content-Length (wrk stand-in)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return Load(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000)


def _python_load(url: str, body: str, token: str, duration: int, connections: int) -> Load:
    port = int(url.split(":")[2].split("/")[0])
    raw = body.encode()
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw
    args = ["load", str(port), request.hex(), str(duration), str(connections)]
    command = [sys.executable, "-m", "bench.bench_api", *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    values = json.loads(out)
    return Load(values["rps"], values["p50_ms"], values["p99_ms"])


def _load(
    ctx: BenchContext,
    url: str,
    query: str,
    token: str,
    seconds: int,
    connections: int = CONNECTIONS,
) -> Load:
    load = _wrk if shutil.which("wrk") else _python_load
    return load(url, json.dumps({"query": query}), token, seconds, connections)


def _median(runs: list[Load]) -> Load:
    return Load(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
    )


def _side_by_side(
    ctx: BenchContext, url: str, kind: str, query: str, token: str, seconds: int
) -> tuple[Load, Load]:
    """(GraphQL, bare endpoint returning the very JSON GraphQL returned), measured in
    alternation so that a change in the machine's load touches both alike."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        payload_file = f.name
    servers: list[Server] = []
    try:
        graphql = Server(kind, url, payload_file)
        servers.append(graphql)
        body = graphql.post(query, token)
        if b'"errors"' in body:
            raise RuntimeError(f"the benchmark query failed: {body[:500]!r}")
        Path(payload_file).write_bytes(body)
        bare = Server("bare", url, payload_file)
        servers.append(bare)
        if bare.post(query, token) != body:
            raise RuntimeError("the bare endpoint does not return the same payload")
        for server in servers:  # warm-up: pool filled, caches primed
            _load(ctx, server.url, query, token, 1)
        runs: dict[str, list[Load]] = {"graphql": [], "bare": []}
        for _ in range(ctx.runs):
            runs["graphql"].append(_load(ctx, graphql.url, query, token, seconds))
            runs["bare"].append(_load(ctx, bare.url, query, token, seconds))
    finally:
        for server in servers:
            server.stop()
        os.unlink(payload_file)
    return _median(runs["graphql"]), _median(runs["bare"])


def run(ctx: BenchContext) -> list[Result]:
    tool = "wrk" if shutil.which("wrk") else "asyncio client (install wrk for truer figures)"
    print(f"  api: seeding; load from {tool}, {CONNECTIONS} connections", file=sys.stderr)
    url = ctx.database()
    _seed(url, wallets=ctx.scale(40, 10), fills_per_day=ctx.scale(5, 2))
    token = _token()
    seconds = ctx.scale(8, 2)
    cached, bare_summary = _side_by_side(ctx, url, "graphql", SUMMARY, token, seconds)
    uncached, bare_global = _side_by_side(ctx, url, "graphql-uncached", GLOBAL, token, seconds)
    same = f"bare Starlette endpoint, same JSON ({tool})"
    return [
        Result(
            "api: cached dashboardSummary",
            "req/s",
            cached.rps,
            same,
            bare_summary.rps,
            "≥ 40% of the bare endpoint's requests/s (ratio ≥ 0.40)",
            Goal("ratio", ">=", 0.40),
        ),
        Result(
            "api: cached dashboardSummary p99",
            "ms",
            cached.p99_ms,
            same,
            bare_summary.p99_ms,
            "p99 < 20 ms at 64 connections",
            Goal("value", "<", 20.0),
        ),
        Result(
            "api: cached dashboardSummary p50",
            "ms",
            cached.p50_ms,
            same,
            bare_summary.p50_ms,
            "measured beside the bare endpoint",
        ),
        Result(
            "api: uncached globalMetrics(D90)",
            "req/s",
            uncached.rps,
            same,
            bare_global.rps,
            "measured: every request runs GraphQL and one SQL round trip",
        ),
        Result(
            "api: uncached globalMetrics(D90) p99",
            "ms",
            uncached.p99_ms,
            same,
            bare_global.p99_ms,
            "measured beside the bare endpoint",
        ),
    ]


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"] and len(argv) == 5:
        _serve(argv[1], int(argv[2]), argv[3], argv[4])
        return 0
    if argv[:1] == ["load"] and len(argv) == 5:
        port, request, seconds, connections = argv[1:]
        load = asyncio.run(
            _client_load(int(port), bytes.fromhex(request), float(seconds), int(connections))
        )
        print(json.dumps(load.__dict__))
        return 0
    print(
        "usage: python -m bench.bench_api serve KIND PORT DATABASE_URL PAYLOAD_FILE",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
