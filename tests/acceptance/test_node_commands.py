"""`hl-analytics node-ingest` and `backfill --archive` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import psycopg

from hlsim import nodefiles
from hlsim.market import Market
from storage import orgs
from tests.cli import run_cli
from tests.factories import ms

NOW = ms(2026, 1, 16, 0)
HOUR = 3_600_000


def _count(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM hl_fills_raw").fetchone()
    assert row is not None
    return int(row[0])


def test_node_ingest_once_and_backfill_with_a_day_range(db_url: str, tmp_path: Path) -> None:
    market = Market(9, now_ms=NOW)
    wallet = market.add_wallet(fills_per_day=2_000, since_ms=NOW - 2 * 24 * HOUR)
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "A")
        orgs.track_wallets(conn, org.id, [wallet])
    env = {"DATABASE_URL": db_url}

    live = tmp_path / "node"
    writer = nodefiles.NodeWriter(market, live, start_ms=NOW - HOUR)
    writer.write_until(NOW - 1)
    node = run_cli("node-ingest", "--node-dir", str(live), "--once", env=env)
    assert node.code == 0, node.err
    in_last_hour = [f for f in market.fills(wallet) if NOW - HOUR <= f["time"] < NOW]
    assert _count(db_url) == len(in_last_hour) > 0

    archive = tmp_path / "archive"
    nodefiles.write_archive(market, archive, NOW - 2 * 24 * HOUR, NOW, block_ms=10_000)
    one_day = run_cli(
        "backfill", "--archive", str(archive), "--from", "2026-01-15", "--to", "2026-01-15",
        env=env,
    )  # fmt: skip
    assert one_day.code == 0, one_day.err
    assert "[24/24]" in one_day.out and "backfill done: 24 file(s)" in one_day.out
    on_the_15th = [f for f in market.fills(wallet) if NOW - 24 * HOUR <= f["time"] < NOW]
    assert _count(db_url) == len(on_the_15th)  # the node's last hour is stored once

    everything = run_cli("backfill", "--archive", str(archive), "--org", str(org.id), env=env)
    assert everything.code == 0, everything.err
    assert _count(db_url) == len([f for f in market.fills(wallet) if f["time"] < NOW])

    missing = run_cli("backfill", "--archive", str(tmp_path / "nope"), env=env)
    assert missing.code == 1 and missing.err.count("\n") == 1 and "no such directory" in missing.err
