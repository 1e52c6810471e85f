"""The node source end to end in-process: node files → fills → wallet-days → org-days."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from hlsim import nodefiles
from hlsim.market import Market
from jobs import node_files, node_source, scheduler
from jobs.node_source import NodeDirInvalid, NodeFollower, check_root, follow
from jobs.pipeline import Pipeline
from storage import cursor, node_position, orgs
from tests.cli import run_cli
from tests.factories import ms
from tests.integration.pipeline.expected import Expected, add_raw, assert_org_days, resolve_planted
from tests.integration.pipeline.support import pipeline, worker
from tests.simulator import StartSimulator
from tests.waiting import wait_until

# An hour after midnight: two hours of blocks cross a day.
NOW = ms(2026, 1, 16, 1)
HOUR = 3_600_000
BLOCK_MS = 1000


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def busy_market() -> Market:
    return Market.generate(11, wallets=6, days=1, now_ms=NOW, fills_per_day=(300, 3000))


def caught_up(p: Pipeline, root: Path) -> None:
    follow(p, root, threading.Event(), once=True)


def expected_from_files(root: Path, ids: dict[str, int]) -> tuple[Expected, int]:
    """The independent computation: every fill of the tracked users in the files, and
    how many distinct ones there are."""
    expected = Expected()
    seen: set[tuple[object, ...]] = set()
    for hour in node_files.hour_files(root):
        for line in hour.path.read_bytes().splitlines():
            try:
                block = json.loads(line)
            except ValueError:
                continue
            if not isinstance(block, dict):
                continue
            for user, raw in block.get("events", []):
                key = (user, raw["tid"], raw["oid"], raw["time"], raw["coin"])
                if user in ids and key not in seen:
                    seen.add(key)
                    add_raw(expected, ids[user], [raw])
    return expected, len(seen)


def stored_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM hl_fills_raw").fetchone()
    assert row is not None
    return int(row[0])


def test_the_node_source_stores_tracked_fills_across_days_with_exact_rollups(
    auto: psycopg.Connection, db_url: str, tmp_path: Path, start_simulator: StartSimulator
) -> None:
    market = busy_market()
    server = start_simulator(market)
    org = orgs.create_org(auto, "A").id
    members = market.wallets[:4]
    with auto.transaction():
        orgs.track_wallets(auto, org, members)
    ids = {w.address: w.id for w in orgs.upsert_wallets(auto, members)}
    writer = nodefiles.NodeWriter(market, tmp_path, start_ms=NOW - 2 * HOUR, block_ms=BLOCK_MS)
    writer.write_until(NOW - 90 * 60_000)
    # A block being written: its first half only.
    line = nodefiles.block_lines(market, writer.next_block, writer.next_block + 1, BLOCK_MS)[0]
    path = writer.append_raw(line[:25])
    with pipeline(db_url, server) as p:
        caught_up(p, tmp_path)
        pos = node_position.get(auto, "node")
        assert pos is not None and pos.byte_offset == path.stat().st_size - 25
        assert pos.last_block == writer.next_block - 1
        before = stored_count(auto)
        assert before > 0

        writer.append_raw(line[25:])
        writer.next_block += 1
        writer.append_raw(b'{"block_number": "not a number"}\n')
        bad_at = path.stat().st_size - len(b'{"block_number": "not a number"}\n')
        writer.write_until(NOW)
        caught_up(p, tmp_path)
        pos = node_position.get(auto, "node")
        assert pos is not None and pos.file == "node_fills_by_block/hourly/20260116/0"
        assert pos.last_block == NOW // BLOCK_MS - 1 and pos.gaps == 0
        rows = auto.execute(
            "SELECT wallet_id, source_file, source_offset FROM hl_fills_quarantine"
        ).fetchall()
        assert rows == [(None, "node_fills_by_block/hourly/20260115/23", bad_at)]

        expected, distinct = expected_from_files(tmp_path, ids)
        assert stored_count(auto) == distinct
        resolve_planted(auto)
        with worker(p):
            p.broker.join("rollups", timeout=60_000)
        assert_org_days(auto, org, expected.org_days(ids.values()))
        assert len({day for _, day in expected.wallet_days}) == 2, "the files cross a day"

        # Followed again from the start (a crash before any position): stored once.
        with auto.transaction():
            node_position.forget(auto, "node")
        caught_up(p, tmp_path)
        assert stored_count(auto) == distinct


def test_a_deleted_file_and_a_missing_hour_are_gaps_the_api_is_asked_to_cover(
    auto: psycopg.Connection, db_url: str, tmp_path: Path, start_simulator: StartSimulator
) -> None:
    market = busy_market()
    server = start_simulator(market)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, market.wallets[:2])
    writer = nodefiles.NodeWriter(market, tmp_path, start_ms=NOW - 3 * HOUR, block_ms=BLOCK_MS)
    writer.write_until(NOW - 3 * HOUR + 60_000)
    with pipeline(db_url, server) as p, closing(NodeFollower(p, tmp_path)) as follower:
        while follower.step(auto).progressed:
            pass
        # The node prunes the file being read, skips an hour, writes the last one.
        first = writer.path_of_block(writer.next_block)
        first.unlink()
        writer.next_block = (NOW - HOUR) // BLOCK_MS
        writer.write_until(NOW)
        while follower.step(auto).progressed:
            pass
        pos = node_position.get(auto, "node")
        assert pos is not None and pos.file.endswith("/20260116/0")
        assert pos.gaps == 1 and pos.last_gap is not None and "missing" in pos.last_gap
        queued = auto.execute(
            "SELECT count(*) FROM jobs WHERE actor = 'ingest_wallet' AND state = 'queued'"
        ).fetchone()
        assert queued is not None and queued[0] == 2


def test_a_missing_or_empty_node_dir_is_one_line_naming_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(NodeDirInvalid, match="no such directory"):
        check_root(tmp_path / "nope")
    with pytest.raises(NodeDirInvalid, match=r"holds no fill files \(expected node_fills_by_block"):
        check_root(tmp_path)


def test_wallets_a_live_node_covers_are_not_polled_until_it_stops_advancing(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    market = busy_market()
    server = start_simulator(market)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        wallets, _ = orgs.track_wallets(auto, org, market.wallets[:3])
        for w in wallets[:2]:  # had their first API pass
            cursor.advance(auto, w.id, synced_until_ms=NOW, last_fill_ms=NOW, stored=1)
            cursor.record_success(auto, w.id)
        node_position.save(auto, "node", file="f", offset=0, last_block=1, last_block_ms=NOW)
    with pipeline(db_url, server) as p:
        live = scheduler.tick(p, auto)
        assert live.tracked == 1 and live.queued == 1  # only the one without an API pass
        auto.execute("UPDATE hl_node_position SET advanced_at = now() - interval '2 minutes'")
        auto.execute("UPDATE hl_ingest_cursor SET last_success_at = now() - interval '1 day'")
        stale = scheduler.tick(p, auto)
        assert stale.tracked == 3 and stale.queued == 2


def test_status_shows_the_node_source_position_and_lag(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        node_position.save(
            conn,
            "node",
            file="node_fills_by_block/hourly/20260116/0",
            offset=1234,
            last_block=676607012,
            last_block_ms=NOW,
        )
    result = run_cli("status", env={"DATABASE_URL": db_url})
    assert result.code == 0, result.err
    assert "node_fills_by_block/hourly/20260116/0" in result.out
    assert "676607012" in result.out and "2026-01-16 01:00:00" in result.out


def test_a_partial_last_line_is_quarantined_only_once_it_stays_so_after_the_hour_ended(
    auto: psycopg.Connection,
    db_url: str,
    tmp_path: Path,
    start_simulator: StartSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node_source, "TAIL_GRACE_S", 0.3)
    market = busy_market()
    server = start_simulator(market)
    writer = nodefiles.NodeWriter(market, tmp_path, start_ms=NOW - HOUR - 5_000, block_ms=BLOCK_MS)
    writer.write_until(NOW - HOUR - 1)
    first = writer.path_of_block(writer.next_block - 1)
    with first.open("ab") as f:
        f.write(b'{"block_number": 1')  # the hour's last line, not (yet) whole
    writer.write_until(NOW - HOUR + 3_000)  # the next hour's file
    with pipeline(db_url, server) as p, closing(NodeFollower(p, tmp_path)) as follower:
        while follower.step(auto).progressed:
            pass
        pos = node_position.get(auto, "node")
        assert pos is not None and pos.file.endswith("/20260115/23")  # still waiting
        wait_until(lambda: follower.step(auto).moved, 10, "the tail to settle")
        while follower.step(auto).progressed:
            pass
        pos = node_position.get(auto, "node")
        assert pos is not None and pos.file.endswith("/20260116/0")
        rows = auto.execute("SELECT wallet_id, source_file, source_offset FROM hl_fills_quarantine")
        assert rows.fetchall() == [
            (None, "node_fills_by_block/hourly/20260115/23", first.stat().st_size - 18)
        ]
