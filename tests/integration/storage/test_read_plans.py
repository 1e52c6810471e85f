"""No read statement of the API scans a table that grows with wallets × days.

The org is seeded set-based at a moderate size (2,000 wallets × 120 days, two of
three wallet-days active: 160,000 wallet-days and as many wallet-coin-days, 100 wallets'
fills) and ANALYZEd, so the planner weighs the tables as they are. Every statement
bench/read_seed.py lists (each field of the API, each ordering, 366/90/7-day ranges
and one in the middle) is EXPLAINed twice: as planned, and with sequential scans discouraged
(`enable_seqscan = off`), which leaves a sequential scan in a plan only where no
index can serve it. Neither may scan one of those tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg

from bench.read_seed import api_reads, seed

# The tables whose size is wallets × days (or fills); the fills' partitions too.
GROWING = (
    "wallet_day_metrics",
    "wallet_coin_day_metrics",
    "wallet_running_totals",
    "wallet_coin_running_totals",
    "wallet_day_totals",
    "hl_fills_raw",
    # Wallets × spans per org: a scan of it would make a standing ranking linear.
    "org_wallet_ranks",
)
# Tables of orgs × days (× coins): the seeded org holds every row, so a sequential scan
# is the planner's right choice here; with sequential scans discouraged, an index must
# serve the statement (as it will among many orgs).
PER_ORG = ("org_coin_day_metrics",)


def _grows(table: str, seqscan: str) -> bool:
    """One of GROWING, or a partition of the fills (`wallet_day_totals_stale`, which
    lists at most every wallet once, is not one); with `seqscan` off, also PER_ORG."""
    if seqscan == "off" and table in PER_ORG:
        return True
    return table in GROWING or table.startswith("hl_fills_raw_")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _seq_scans(
    conn: psycopg.Connection, sql: str, params: dict[str, object], seqscan: str = "on"
) -> list[str]:
    row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    assert row is not None
    return [
        node["Relation Name"]
        for node in _nodes(row[0][0]["Plan"])
        if node["Node Type"] == "Seq Scan" and _grows(node["Relation Name"], seqscan)
    ]


def test_no_read_scans_a_table_of_wallets_by_days(db_url: str) -> None:
    seeded = seed(db_url, wallets=2_000, days=120, last=date(2026, 11, 30), fill_wallets=100)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        reads = api_reads(seeded)
        assert len(reads) > 30
        # The check itself: today's statement of a year's ranking scans the wallet-days.
        year = next(r for r in reads if r.name == "topWallets VOLUME 366d")
        assert _seq_scans(conn, BEFORE_TOP_WALLETS, year.params) == ["wallet_day_metrics"]
        for seqscan in ("on", "off"):
            conn.execute(f"SET enable_seqscan = {seqscan}")
            scans = {r.name: _seq_scans(conn, r.sql, r.params, seqscan) for r in reads}
            assert {name: tables for name, tables in scans.items() if tables} == {}, seqscan


# The ranking before the read models: every wallet-day of the range, summed.
BEFORE_TOP_WALLETS = """
SELECT w.address, sum(m.total_volume_usd)
FROM org_wallets ow
JOIN wallets w ON w.id = ow.wallet_id
JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id
WHERE ow.org_id = %(org_id)s AND m.day BETWEEN %(start)s AND %(end)s
GROUP BY w.address HAVING sum(m.trade_count) > 0
ORDER BY sum(m.total_volume_usd) DESC, w.address LIMIT %(limit)s
"""
