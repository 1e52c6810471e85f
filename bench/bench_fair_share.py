"""Fair share under a flood: one token floods an instance, another org's client queries.

One API process (bench_api's server, kind `graphql-fair`: fair share's default
limits). The flooder, in a process of its own, sends the most expensive documents
the cost budget allows (26 aliases of `globalMetrics` over 90 days: 2,340 of
2,400), each made unique by its variables so the cache cannot answer it, at twice
HL_ANALYTICS_CALLER_RPS: the instance accepts what the limits allow and refuses the
rest with 429. Meanwhile a client of another org asks uncached 7-day series, one at
a time, five a second. Figures:

- that client's p99 under the flood, beside its p99 with no flood (same run):
  target < 50 ms;
- the flooder's accepted requests a second, beside what it offered;
- the instance's health after the flood (`/healthz` 200 and a query answered: 1).

python -m bench.bench_fair_share flood PORT TOKEN SECONDS RATE  (used by run())
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from bench.bench_api import SECRET, USER, Server, _seed
from bench.common import BenchContext, Goal, Result
from storage import orgs, rollups
from storage.db import connection

CALM_USER = "bench-calm"
ALIASES = 26
FLOOD_DAYS = 90
CALM_RPS = 5.0
CALLER_RPS = 10.0  # HL_ANALYTICS_CALLER_RPS's default
FIELDS = "day dau tradeCount totalVolumeUsd feesUsd realizedPnlUsd avgVolumePerUser"
FLOOD = (
    "query Flood($b: DateRange!) { "
    + " ".join(f"a{i}: globalMetrics(between: $b) {{ {FIELDS} }}" for i in range(ALIASES))
    + " }"
)
CALM = f"query Calm($b: DateRange!) {{ globalMetrics(between: $b) {{ {FIELDS} }} }}"


def token(sub: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"sub": sub, "aud": "authenticated", "role": "authenticated"}
    return jwt.encode({**claims, "iat": now, "exp": now + 86_400}, SECRET, algorithm="HS256")


def window(n: int, days: int) -> dict[str, str]:
    """The n-th window of `days` UTC days, ending n days before today (n < 276)."""
    end = datetime.now(UTC).date() - timedelta(days=n % (366 - days))
    return {"from": (end - timedelta(days=days - 1)).isoformat(), "to": end.isoformat()}


def _seed_calm(url: str) -> None:
    """Another org, tracking some of the flooder's wallets, rolled up like it."""
    today = datetime.now(UTC).date()
    with connection(url) as conn:
        org = orgs.create_org(conn, "Calm")
        addresses = [f"0x{n:040x}" for n in range(1, 11)]
        orgs.track_wallets(conn, org.id, addresses)
        orgs.add_user(conn, CALM_USER, org.id, "viewer")
        for ago in range(90):
            rollups.rebuild_org_day(conn, org.id, today - timedelta(days=ago))


async def _flood(port: int, bearer: str, seconds: float, rate: float) -> dict[str, float]:
    """Open loop: a request every 1/rate s, whatever the answers; counts by status."""
    statuses: Counter[str] = Counter()
    url = f"http://127.0.0.1:{port}/graphql"
    headers = {"Authorization": f"Bearer {bearer}"}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(n: int) -> None:
            body = {"query": FLOOD, "variables": {"b": window(n, FLOOD_DAYS)}}
            try:
                response = await client.post(url, json=body, headers=headers)
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError:
                statuses["error"] += 1

        tasks = []
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < seconds:
            tasks.append(asyncio.create_task(one(n)))
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "sent": n, **{k: float(v) for k, v in statuses.items()}}


def _calm(server: Server, seconds: float, first: int) -> list[float]:
    """Latencies (ms) of the other org's uncached queries, one at a time, CALM_RPS a second."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token(CALM_USER)}"}
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < seconds:
            body = {"query": CALM, "variables": {"b": window(first + n, 7)}}
            sent = time.perf_counter()
            response = client.post(server.url, json=body, headers=headers)
            latencies.append((time.perf_counter() - sent) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"the other org's query failed: {response.text[:300]}")
            n += 1
            time.sleep(max(0.0, started + n / CALM_RPS - time.perf_counter()))
    return latencies


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


def _healthy(server: Server) -> float:
    health = httpx.get(server.url.removesuffix("/graphql") + "/healthz", timeout=10)
    body = {"query": "{ dashboardSummary { trackedWallets } }"}
    headers = {"Authorization": f"Bearer {token(CALM_USER)}"}
    answer = httpx.post(server.url, json=body, headers=headers, timeout=10)
    return 1.0 if health.status_code == 200 and answer.status_code == 200 else 0.0


def _scenario(url: str, kind: str, seconds: int, first: int, rate: float) -> dict[str, object]:
    """The other org's latencies alone and under the flood, the flood's answers, health."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as unused:
        server = Server(kind, url, unused.name)
        try:
            alone = _calm(server, seconds, first=first)
            healthy_before = _healthy(server)
            command = [sys.executable, "-m", "bench.bench_fair_share", "flood"]
            command += [str(server.port), token(USER), str(seconds + 1), str(rate)]
            flood = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            time.sleep(1)  # the flood's first burst is under way
            flooded = _calm(server, seconds, first=first + 100)
            out, _ = flood.communicate(timeout=seconds + 300)
            healthy_after = _healthy(server)
        finally:
            server.stop()
    counts = json.loads(out)
    print(f"  fair share ({kind}): flood answers {counts}", file=sys.stderr)
    return {
        "alone": alone,
        "flooded": flooded,
        "counts": counts,
        "before": healthy_before,
        "after": healthy_after,
    }


def run(ctx: BenchContext) -> list[Result]:
    print("  fair share: seeding two orgs", file=sys.stderr)
    url = ctx.database()
    _seed(url, wallets=ctx.scale(40, 10), fills_per_day=ctx.scale(5, 2))
    _seed_calm(url)
    seconds = ctx.scale(10, 3)
    fair = _scenario(url, "graphql-fair", seconds, first=0, rate=2 * CALLER_RPS)
    # With the limits raised beyond reach (the cost budget still holds), at the rate a
    # limit of requests alone would accept.
    unlimited = _scenario(url, "graphql", seconds, first=200, rate=CALLER_RPS)
    counts = fair["counts"]
    assert isinstance(counts, dict)
    accepted = counts.get("200", 0.0) / counts["seconds"]
    offered = counts["sent"] / counts["seconds"]

    def p99_of(scenario: dict[str, object], key: str) -> float:
        samples = scenario[key]
        assert isinstance(samples, list)
        return p99(samples)

    return [
        Result(
            "fair share: other org's p99 under a flood",
            "ms",
            p99_of(fair, "flooded"),
            "same client, no flood",
            p99_of(fair, "alone"),
            "p99 < 50 ms while one token floods with the costliest documents",
            Goal("value", "<", 50.0),
        ),
        Result(
            "fair share: flood at CALLER_RPS, limits raised",
            "ms",
            p99_of(unlimited, "flooded"),
            "same client, no flood",
            p99_of(unlimited, "alone"),
            "measured: what the limits prevent",
        ),
        Result(
            "fair share: flooder's accepted rate",
            "req/s",
            accepted,
            "offered (2 × HL_ANALYTICS_CALLER_RPS)",
            offered,
            f"measured: {int(counts.get('429', 0))} refused with 429",
        ),
        Result(
            "fair share: healthy after the flood",
            "ok",
            float(str(fair["after"])),
            "healthy before it",
            float(str(fair["before"])),
            "/healthz 200 and a query answered (1)",
            Goal("value", ">=", 1.0),
        ),
    ]


def main(argv: list[str]) -> int:
    if argv[:1] == ["flood"] and len(argv) == 5:
        counts = asyncio.run(_flood(int(argv[1]), argv[2], float(argv[3]), float(argv[4])))
        print(json.dumps(counts))
        return 0
    print("usage: python -m bench.bench_fair_share flood PORT TOKEN SECONDS RATE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
