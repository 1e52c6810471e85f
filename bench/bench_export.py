"""CSV export: a wallet's whole history as `/export/fills.csv`, in constant memory.

One tracked wallet holds 200,000 fills over a year (QUICK: 20,000), generated in
SQL. The export runs through `graph.export.Exports.fills` as the API calls it (a
bearer token verified, the profile looked up, keyset pages of PAGE_ROWS read on
pooled connections), and its body is consumed chunk by chunk. Figures, each the
peak of Python's allocations (tracemalloc; libpq's own buffers are not counted,
which favours the baseline, whose whole result sits there at once):

- streaming the whole history, against the same CSV built whole in memory (every
  row of `storage.dashboard.wallet_fills` fetched at once, then written out): the
  target is a tenth of it or less;
- streaming the whole history, against streaming a tenth of it: the same memory
  (ratio at most 1.5) is what "constant" means;
- rows per second of the stream, against the whole-in-memory build (informational;
  measured without tracemalloc).
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import date

import psycopg
from starlette.requests import Request
from starlette.responses import StreamingResponse

from bench.common import BenchContext, Goal, Result
from graph.auth import Callers, TokenVerifier, issue_token
from graph.cache import ResponseCache
from graph.context import Services
from graph.export import Exports, _csv, fill_cells
from graph.throttle import Limits, Throttle
from hl_core.settings import Settings
from storage import dashboard, orgs
from storage.db import async_pool
from storage.fills import day_bounds_ms

ADDRESS = "0x" + "ab" * 20
FIRST_DAY = date(2025, 11, 1)
SECRET = "bench-export-secret-0123456789abcdef0123"

# Fill i of the wallet at an evenly spread time over 365 days, coins and fee tokens mixed.
_FILLS = """
INSERT INTO hl_fills_raw (wallet_id, time, tid, oid, coin, side, px, sz, dir, start_position,
                          closed_pnl, fee, fee_token, builder_fee, hash, crossed)
SELECT %(wallet)s, %(lo)s + (i::bigint * 365 * 86399999) / %(fills)s, i, i,
       (ARRAY['BTC', 'ETH', '@107', 'PURR/USDC', 'xyz:TSLA'])[1 + i %% 5],
       CASE WHEN i %% 2 = 0 THEN 'B' ELSE 'A' END,
       (100 + i %% 997)::numeric / 7, (1 + i %% 13)::numeric / 100,
       'Open Long', 0, ((i %% 201) - 100)::numeric / 10, ((i %% 50) - 5)::numeric / 1000,
       CASE WHEN i %% 5 = 2 THEN 'HYPE' ELSE 'USDC' END, NULL, '0x00', true
FROM generate_series(0, %(fills)s - 1) AS i
"""


def _prepare(url: str, fills: int) -> str:
    """The wallet and its fills, tracked by an org whose viewer's token is returned."""
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    with psycopg.connect(url) as conn:
        org = orgs.create_org(conn, "bench").id
        (wallet,) = orgs.track_wallets(conn, org, [ADDRESS])[0]
        conn.execute(
            _FILLS, {"wallet": wallet.id, "fills": fills, "lo": day_bounds_ms(FIRST_DAY)[0]}
        )
        orgs.add_user(conn, "bench-viewer", org, "viewer")
        conn.execute("ANALYZE hl_fills_raw")
    return issue_token(settings, "bench-viewer", 3600)


async def _peak(work: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """(peak MB allocated while `work` ran, its seconds untraced, the rows it made)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    start = time.perf_counter()
    rows = await work()
    return peak / 1e6, time.perf_counter() - start, rows


async def _measure(url: str, token: str, fills: int) -> dict[str, tuple[float, float, int]]:
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    pool = async_pool(url, max_size=2)
    await pool.open(wait=True)
    cache = ResponseCache(enabled=False)
    try:
        services = Services(pool, url, 5.0, cache, settings.hyperliquid_usd_tokens)
        callers = Callers(pool, 5.0)
        throttle = Throttle(Limits.of(settings))  # a few requests: the defaults do
        exports = Exports(services, TokenVerifier(settings, None), callers, throttle)
        org = (await callers.caller("bench-viewer")).org_id
        tenth = (FIRST_DAY + (date(2026, 10, 31) - FIRST_DAY) * 9 // 10).isoformat()

        def stream(query: str) -> Callable[[], Awaitable[int]]:
            async def run() -> int:
                scope = {
                    "type": "http",
                    "method": "GET",
                    "path": "/export/fills.csv",
                    "query_string": query.encode(),
                    "headers": [(b"authorization", f"Bearer {token}".encode())],
                }
                response = await exports.fills(Request(scope))
                assert isinstance(response, StreamingResponse), response.status_code
                lines = 0
                async for chunk in response.body_iterator:
                    lines += str(chunk).count("\n")
                return lines - 1

            return run

        async def whole() -> int:
            async with pool.connection() as conn:
                page = await dashboard.wallet_fills(
                    conn, org, ADDRESS, FIRST_DAY, date.today(), fills
                )
            body = _csv(fill_cells(row) for row in page.fills)
            return body.count("\n")

        return {
            "stream": await _peak(stream(f"address={ADDRESS}")),
            "tenth": await _peak(stream(f"address={ADDRESS}&from={tenth}&to=2026-10-31")),
            "whole": await _peak(whole),
        }
    finally:
        await pool.close()
        await cache.close()


def run(ctx: BenchContext) -> list[Result]:
    fills = ctx.scale(200_000, 20_000)
    url = ctx.database()
    token = _prepare(url, fills)
    got = asyncio.run(_measure(url, token, fills))
    (stream_mb, stream_s, stream_rows) = got["stream"]
    (tenth_mb, _, tenth_rows) = got["tenth"]
    (whole_mb, whole_s, whole_rows) = got["whole"]
    assert stream_rows == whole_rows == fills, (stream_rows, whole_rows, fills)
    assert 0 < tenth_rows < fills
    size = f"{fills:,} fills"
    return [
        Result(
            f"fills.csv streamed, {size}: peak memory",
            "MB",
            stream_mb,
            f"the same CSV built whole in memory ({size})",
            whole_mb,
            "<= 0.1 x baseline",
            Goal("ratio", "<=", 0.1),
        ),
        Result(
            f"fills.csv streamed, {size}: peak memory",
            "MB",
            stream_mb,
            f"fills.csv streamed, {tenth_rows:,} fills (a tenth of the history)",
            tenth_mb,
            "<= 1.5 x baseline (constant)",
            Goal("ratio", "<=", 1.5),
        ),
        Result(
            f"fills.csv streamed, {size}: rows per second",
            "rows/s",
            stream_rows / stream_s,
            f"the same CSV built whole in memory ({size})",
            whole_rows / whole_s,
            "informational",
        ),
    ]
