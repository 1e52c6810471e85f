"""Ingest: fills stored idempotently from already-fetched pages, against raw COPY.

The fills are built in Python first (as the Hyperliquid client hands them
over: typed `Fill` objects in pages of 2,000), so the figure is the storage
path alone: `storage.fills.insert_fills`, one transaction per page, into a
fresh fills table. The baseline writes the same rows, page by page, with a
plain `COPY` into a scratch table without keys or indexes — the fastest way
PostgreSQL takes rows. New pages take insert_fills' fast path (straight COPY:
no stored fill of the wallet in the page's time range); a second figure
re-inserts pages already stored (every fill a duplicate: the general path
through a temporary table and `INSERT … ON CONFLICT DO NOTHING`), which is what
the 10-minute overlap costs on each run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import psycopg

from bench.common import BenchContext, Goal, Result, median_of, timed
from storage import fills as fill_store
from storage import orgs
from storage.fills import FILL_COLUMNS, Fill, fill_row

PAGE = 2_000
START_MS = 1_793_577_600_000  # 2026-11-02 00:00 UTC

_SCRATCH = "CREATE TABLE bench_copy (LIKE hl_fills_raw INCLUDING DEFAULTS)"
_COPY_SCRATCH = f"COPY bench_copy (wallet_id, {', '.join(FILL_COLUMNS)}) FROM STDIN"
_EMPTY = "TRUNCATE hl_fills_raw, bench_copy"


def _fills(n: int, wallets: int, seed: int = 5) -> list[tuple[int, list[Fill]]]:
    """Pages of fills, each page one wallet's, as ingest receives them."""
    rng = random.Random(seed)
    coins = ["BTC", "ETH", "@107", "PURR/USDC", "xyz:TSLA"]
    per_wallet = n // wallets
    pages: list[tuple[int, list[Fill]]] = []
    for w in range(wallets):
        wallet_fills = [
            Fill(
                time=START_MS + i * 40_000 + rng.randint(0, 999),
                tid=w * per_wallet + i,
                oid=rng.randint(1, 10**12),
                coin=rng.choice(coins),
                side=rng.choice("BA"),
                px=Decimal(rng.randint(1, 10**8)) / 1000,
                sz=Decimal(rng.randint(1, 10**6)) / 10000,
                dir="Open Long",
                start_position=Decimal(rng.randint(0, 10**6)) / 100,
                closed_pnl=Decimal(rng.randint(-(10**6), 10**6)) / 100,
                fee=Decimal(rng.randint(-100, 10**4)) / 10**6,
                fee_token="USDC",
                builder_fee=None,
                hash="0x" + f"{rng.getrandbits(256):064x}",
                crossed=rng.random() < 0.5,
            )
            for i in range(per_wallet)
        ]
        for start in range(0, len(wallet_fills), PAGE):
            pages.append((w + 1, wallet_fills[start : start + PAGE]))
    return pages


def run(ctx: BenchContext) -> list[Result]:
    n = ctx.scale(200_000, 20_000)
    wallets = ctx.scale(20, 4)
    url = ctx.database()
    pages = _fills(n, wallets)
    with psycopg.connect(url) as conn:
        ids = [
            w.id for w in orgs.upsert_wallets(conn, [f"0x{i:040x}" for i in range(1, 1 + wallets)])
        ]
        conn.execute(_SCRATCH)
    assert ids == list(range(1, 1 + wallets))

    with psycopg.connect(url, autocommit=True) as conn:

        def empty() -> None:
            conn.execute(_EMPTY)

        def store() -> None:
            for wallet_id, page in pages:
                with conn.transaction():
                    fill_store.insert_fills(conn, wallet_id, page)

        def raw_copy() -> None:
            for wallet_id, page in pages:
                with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_SCRATCH) as copy:
                    for fill in page:
                        copy.write_row((wallet_id, *fill_row(fill)))

        def fresh(measure: Callable[[], None]) -> float:
            empty()
            return timed(measure)

        copy_s = median_of(ctx.runs, lambda: fresh(raw_copy))
        store_s = median_of(ctx.runs, lambda: fresh(store))
        empty()
        store()
        again_s = median_of(ctx.runs, lambda: timed(store))
        stored = conn.execute("SELECT count(*) FROM hl_fills_raw").fetchone()
    assert stored is not None and stored[0] == n, "every fill must be stored once"
    copy_rate = n / copy_s
    return [
        Result(
            f"ingest: new fills stored idempotently ({n:,} fills, pages of {PAGE:,})",
            "fills/s",
            n / store_s,
            "raw COPY into a scratch table",
            copy_rate,
            ">= 50% of raw COPY",
            Goal("ratio", ">=", 0.50),
        ),
        Result(
            "ingest: overlap re-fetch, every fill already stored",
            "fills/s",
            n / again_s,
            "raw COPY into a scratch table",
            copy_rate,
            "informational: what the overlap costs",
        ),
    ]
