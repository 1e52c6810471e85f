"""The node source: whole-chain replay of a node's fill file, and its stored fills.

Mainnet density, from Hyperliquid's figures: 2,235,359 trades on 2025-11-01,
two sides each, so about 4.47 million fills a day, 186,000 an hour, by 33,654
traders; a by-block file holds one line per block, about 44,000 an hour. The
benchmark generates one such hour in the node's format (`hlsim.nodefiles`
line shape, explicit nulls) with 1% of the traders tracked, then:

- replay: whole lines read from the file, decoded, and the tracked users' fills
  parsed (`jobs.node_source.parse_lines`, in the follower's batches), against a
  bare loop that only reads and `json`-decodes each line (the limit). The
  projected time for a whole mainnet day is 24 hours of this; goal < 5 min.
- stored: every user tracked over a smaller file, the follower's store step
  (`store_batch`: `insert_many`, pending wallet-days, rollup messages, cursors)
  in fills stored a second, against a raw `COPY` of the same fills into a
  scratch table (goal >= 50%, as for the API source); also reported: the same
  batches forced onto the general path (a stored fill in every range), and the
  follower end to end.
- memory: the process's RSS after replaying half the file and the whole file;
  the follower holds one batch of lines, so it stays flat whatever the size.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import psycopg

from bench.common import BenchContext, Goal, Result, median_of, timed
from hl_core.settings import Settings
from hlsim import nodefiles
from jobs import node_files
from jobs.node_source import BATCH_LINES, follow, parse_lines, store_batch
from jobs.pipeline import build
from storage import orgs
from storage.fills import FILL_COLUMNS, Fill, fill_row

FILLS_PER_HOUR = 186_000
BLOCKS_PER_HOUR = 44_000
TRADERS = 33_654
HOUR_START_MS = 1_793_577_600_000  # 2026-11-02 00:00 UTC
_SCRATCH = "CREATE TABLE IF NOT EXISTS bench_node_copy (LIKE hl_fills_raw INCLUDING DEFAULTS)"
_COPY_SCRATCH = f"COPY bench_node_copy (wallet_id, {', '.join(FILL_COLUMNS)}) FROM STDIN"
_COPY_RAW = f"COPY hl_fills_raw (wallet_id, {', '.join(FILL_COLUMNS)}) FROM STDIN"


def rss_bytes() -> int:
    """The process's resident set now (Linux), else its peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def trader(i: int) -> str:
    return f"0x{i:040x}"


def write_hour(path: Path, fills: int, blocks: int, traders: int, seed: int = 3) -> int:
    """One hour of blocks at the given density; returns the bytes written."""
    rng = random.Random(seed)
    coins = ["BTC", "ETH", "SOL", "HYPE", "@107", "PURR/USDC", "xyz:TSLA"]
    path.parent.mkdir(parents=True, exist_ok=True)
    block_ms = 3_600_000 // blocks
    tid = 10**9
    with path.open("wb") as out:
        left = fills
        for b in range(blocks):
            time_ms = HOUR_START_MS + b * block_ms
            n = min(left, max(0, int(rng.expovariate(blocks / fills)))) if b < blocks - 1 else left
            n -= n % 2
            left -= n
            events = []
            for _ in range(n // 2):
                tid += 1
                px = f"{rng.randint(1, 10**6) / 100:.2f}"
                sz = f"{rng.randint(1, 10**5) / 1000:.3f}"
                coin = rng.choice(coins)
                for side, crossed in (("B", True), ("A", False)):
                    user = trader(rng.randrange(traders))
                    events.append(
                        (
                            user,
                            {
                                "coin": coin, "px": px, "sz": sz, "side": side, "time": time_ms,
                                "startPosition": "0.0", "dir": "Open Long", "closedPnl": "0.0",
                                "hash": "0x" + f"{rng.getrandbits(256):064x}",
                                "oid": rng.randint(1, 10**11), "crossed": crossed,
                                "fee": "0.0123", "tid": tid, "feeToken": "USDC",
                            },
                        )
                    )  # fmt: skip
            out.write(nodefiles.block_line(700_000_000 + b, time_ms, events))
    return path.stat().st_size


def bare_read(path: Path) -> int:
    lines = 0
    with path.open("rb", buffering=1 << 20) as f:
        for line in f:
            json.loads(line)
            lines += 1
    return lines


def replay(path: Path, tracked: dict[str, int], stop_at: int | None = None) -> tuple[int, int]:
    """Reads and filters the file in the follower's batches; returns (lines, fills kept)."""
    lines = kept = offset = 0
    last: int | None = None
    with node_files.open_hour(path) as f:
        while True:
            batch = list(node_files.complete_lines(f, offset, BATCH_LINES))
            if not batch:
                return lines, kept
            parsed, last, _ = parse_lines(batch, offset, tracked, last)
            lines += parsed.lines
            kept += sum(len(v) for v in parsed.fills.values())
            offset = batch[-1][0]
            if stop_at is not None and offset >= stop_at:
                return lines, kept


def run(ctx: BenchContext) -> list[Result]:
    scale = 1 if not ctx.quick else 10
    fills, blocks, traders = FILLS_PER_HOUR // scale, BLOCKS_PER_HOUR // scale, TRADERS
    tracked = {trader(i): i + 1 for i in range(0, traders, 100)}  # 1%
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hla-bench-node-") as tmp:
        root = Path(tmp)
        hour = root / nodefiles.hour_relpath(HOUR_START_MS)
        size = write_hour(hour, fills, blocks, traders)
        bare_s = median_of(ctx.runs, lambda: timed(lambda: bare_read(hour)))
        replay(hour, tracked)
        replay_s = median_of(ctx.runs, lambda: timed(lambda: replay(hour, tracked)))
        replay(hour, tracked, stop_at=size // 2)
        rss_half = rss_bytes()
        lines, kept = replay(hour, tracked)
        rss_full = rss_bytes()
        day_s = replay_s * 24 * scale
        results.append(
            Result(
                f"node replay: lines parsed and filtered ({lines:,} blocks, {fills:,} fills, "
                f"{size / 1e6:.0f} MB, 1% of {traders:,} traders tracked, {kept:,} kept; "
                f"a mainnet day ~{day_s:.0f} s on one core)",
                "lines/s",
                lines / replay_s,
                "bare read + json.loads per line",
                lines / bare_s,
                "whole mainnet day < 300 s",
            )
        )
        results.append(
            Result(
                "node replay: RSS after the whole file vs after half of it",
                "MB",
                rss_full / 1e6,
                "RSS after half the file",
                rss_half / 1e6,
                "flat (ratio ~1.00)",
            )
        )
        results.extend(_stored(ctx, root, scale))
    return results


def _stored(ctx: BenchContext, root: Path, scale: int) -> list[Result]:
    """Every trader tracked, the follower's whole step, against raw COPY of the same fills.

    The measurements alternate (COPY, store, general path, follower, then again), and
    each is the median of its rounds: a load that changes during the run (two cores
    shared) weighs on all of them alike instead of on whichever ran last."""
    fills, blocks, traders = 60_000 // scale, 14_000 // scale, 500
    small = root / "stored"
    path = small / nodefiles.hour_relpath(HOUR_START_MS)
    write_hour(path, fills, blocks, traders, seed=9)
    url = ctx.database()
    settings = Settings.from_env({"DATABASE_URL": url})
    p = build(settings, url, pool_size=1)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            with conn.transaction():
                org = orgs.create_org(conn, "bench")
                orgs.track_wallets(conn, org.id, [trader(i) for i in range(traders)])
                conn.execute(_SCRATCH)
            ids = {w.address: w.id for w in orgs.tracked_wallets(conn, org.id)}
            batches = list(replay_fills(path, ids).items())
            with node_files.open_hour(path) as f:
                lines = list(node_files.complete_lines(f, 0))
            parsed = [
                parse_lines(lines[i : i + BATCH_LINES], 0, ids, None)[0]
                for i in range(0, len(lines), BATCH_LINES)
            ]
            # One fill per wallet inside each of its batches' time ranges, not among the
            # batch's own: every batch then takes the general path (a fill stored by the
            # API source in the same hour, or a node re-read after a crash).
            firsts = [(w, f[0]) for batch in parsed for w, f in batch.fills.items()]
            sentinels = [
                (wallet_id, replace(fill, tid=0, oid=i, coin="BENCH"))
                for i, (wallet_id, fill) in enumerate(firsts)
            ]

            def reset(with_sentinels: bool = False) -> None:
                conn.execute("TRUNCATE hl_fills_raw, hl_node_position, rollup_pending")
                conn.execute("DELETE FROM jobs")
                if with_sentinels:
                    with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_RAW) as copy:
                        for wallet_id, fill in sentinels:
                            copy.write_row((wallet_id, *fill_row(fill)))

            def raw_copy() -> float:
                conn.execute("TRUNCATE bench_node_copy")
                return timed(lambda: _copy(conn, batches))

            def store() -> None:
                for batch in parsed:
                    with conn.transaction():
                        store_batch(p, conn, batch, "bench")

            def store_only() -> float:
                reset()
                return timed(store)

            def store_general() -> float:
                reset(with_sentinels=True)
                return timed(store)

            def follower() -> float:
                reset()
                return timed(lambda: follow(p, small, threading.Event(), once=True))

            rounds: list[tuple[float, float, float, float]] = [
                (raw_copy(), store_only(), store_general(), follower()) for _ in range(ctx.runs)
            ]
            stored = conn.execute("SELECT count(*) FROM hl_fills_raw").fetchone()
    finally:
        p.close()
    copy_s, store_s, general_s, follow_s = (statistics.median(r) for r in zip(*rounds, strict=True))
    n = sum(len(f) for _, f in batches)
    assert stored is not None and stored[0] == n, "every fill stored once"
    copy_rate = n / copy_s
    return [
        Result(
            f"node source: fills stored from parsed batches ({n:,} fills of {traders} "
            f"wallets, batches of {BATCH_LINES:,} lines; insert, pending days, rollup "
            "messages, cursors; no stored fill in the batches' ranges: straight COPY)",
            "fills/s",
            n / store_s,
            "raw COPY of the same fills into a scratch table",
            copy_rate,
            ">= 50% of raw COPY",
            Goal("ratio", ">=", 0.5),
        ),
        Result(
            "node source: the same batches when every wallet has a stored fill in their "
            "ranges (COPY to a temporary table, INSERT … ON CONFLICT)",
            "fills/s",
            n / general_s,
            "raw COPY of the same fills into a scratch table",
            copy_rate,
            "(reported)",
        ),
        Result(
            "node source: the follower end to end on the same file (read, decode, parse, "
            "store, position)",
            "fills/s",
            n / follow_s,
            "raw COPY of the same fills into a scratch table",
            copy_rate,
            "(reported)",
        ),
    ]


def replay_fills(path: Path, ids: dict[str, int]) -> dict[int, list[Fill]]:
    out: dict[int, list[Fill]] = {}
    with node_files.open_hour(path) as f:
        batch = list(node_files.complete_lines(f, 0))
    parsed, _, _ = parse_lines(batch, 0, ids, None)
    for wallet_id, wallet_fills in parsed.fills.items():
        out[wallet_id] = wallet_fills
    return out


def _copy(conn: psycopg.Connection, batches: list[tuple[int, list[Fill]]]) -> None:
    with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_SCRATCH) as copy:
        for wallet_id, wallet_fills in batches:
            for fill in wallet_fills:
                copy.write_row((wallet_id, *fill_row(fill)))
