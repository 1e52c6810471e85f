"""The node's fill files: written by the simulator, read back by jobs.node_files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import lz4.frame
import pytest

from hlsim import nodefiles
from hlsim.market import Market
from jobs import node_files
from jobs.hl_parse import parse_fill
from jobs.node_source import parse_lines

NOW = 1_768_478_400_000  # 2026-01-15 12:00 UTC
HOUR = 3_600_000


def market() -> Market:
    return Market.generate(3, wallets=6, days=1, now_ms=NOW, fills_per_day=(200, 2000))


def read_all(path: Path, layout: str = node_files.BY_BLOCK) -> list[node_files.Block]:
    with node_files.open_hour(path) as f:
        return [node_files.parse_line(line, layout) for _, line in node_files.complete_lines(f, 0)]


def test_node_time_is_iso_without_zone_with_nanoseconds_and_parses_back() -> None:
    assert nodefiles.node_time(NOW + 273) == "2026-01-15T12:00:00.273000000"
    assert node_files.node_time_ms("2025-07-27T08:50:10.273720809") == 1_753_606_210_273
    assert nodefiles.hour_relpath(NOW - 4 * HOUR) == "node_fills_by_block/hourly/20260115/8"


def test_archive_hours_hold_every_fill_once_in_contiguous_blocks(tmp_path: Path) -> None:
    m = market()
    files = nodefiles.write_archive(m, tmp_path, NOW - 3 * HOUR, NOW, block_ms=1000)
    assert [f.name for f in files] == ["9.lz4", "10.lz4", "11.lz4"]
    listed = node_files.hour_files(tmp_path)
    assert [f.path for f in listed] == files
    blocks = [b for f in files for b in read_all(f)]
    numbers = [b.number for b in blocks]
    assert numbers == list(range(numbers[0], numbers[0] + 3 * 3600))
    seen = Counter()
    for block in blocks:
        for user, raw in block.events:
            assert "builderFee" in raw and "deployerFee" in raw  # explicit nulls
            fill = parse_fill(node_files.node_fill(raw))
            assert block.time_ms - 1000 < fill.time <= block.time_ms
            seen[(user, fill.tid, fill.oid)] += 1
    expected = Counter(
        (w, f["tid"], f["oid"])
        for w in m.wallets
        for f in m.fills(w)
        if NOW - 3 * HOUR <= f["time"] < NOW
    )
    assert seen == expected and max(seen.values()) == 1


def test_a_node_fill_stripped_of_its_nulls_parses_like_the_api_fill() -> None:
    m = market()
    wallet = m.wallets[-1]
    raw = m.fills(wallet)[-1]
    from_node = json.loads(json.dumps(nodefiles.node_fill(raw)))
    assert parse_fill(node_files.node_fill(from_node)) == parse_fill(json.loads(json.dumps(raw)))


def test_the_live_writer_rolls_over_hours_and_a_partial_line_is_never_read(tmp_path: Path) -> None:
    m = market()
    writer = nodefiles.NodeWriter(m, tmp_path, start_ms=NOW - 10_000, block_ms=1000)
    writer.write_until(NOW - 10_000)
    m.now_ms = NOW - 10_000
    writer.write_until(NOW + 5_000)
    hours = node_files.hour_files(tmp_path)
    assert [h.path.name for h in hours] == ["11", "12"]
    assert len(read_all(hours[0].path)) == 10 and len(read_all(hours[1].path)) == 5
    path = writer.append_raw(b'{"block_number": 1, "events": [')
    with node_files.open_hour(path) as f:
        lines = list(node_files.complete_lines(f, 0))
    assert len(lines) == 5 and lines[-1][0] == path.stat().st_size - 31
    with path.open("rb") as f:
        node_files.seek(f, lines[2][0])
        rest = list(node_files.complete_lines(f, lines[2][0]))
    assert rest == lines[3:]


def test_old_layout_pairs_and_malformed_lines() -> None:
    block = node_files.parse_pair(b'["0xAb", {"time": 5, "coin": "BTC"}]\n')
    assert block.number is None and block.time_ms == 5
    assert node_files.event_user(block.events[0]) == "0xab"
    for bad in (b"{not json\n", b"[1,2,3]\n", b'{"block_number": -1, "events": []}\n'):
        with pytest.raises(node_files.MalformedLine):
            node_files.parse_block(bad)


def test_a_truncated_lz4_file_yields_its_whole_lines_then_fails(tmp_path: Path) -> None:
    path = tmp_path / "0.lz4"
    data = b"".join(b'{"n": %d}\n' % i for i in range(400_000))
    path.write_bytes(lz4.frame.compress(data)[:-1000])
    got = 0
    with pytest.raises(EOFError), node_files.open_hour(path) as f:
        for _ in node_files.complete_lines(f, 0):
            got += 1
    assert 0 < got < 400_000  # the whole lines read before the cut


def test_parse_lines_keeps_tracked_fills_quarantines_the_rest_and_sees_block_jumps() -> None:
    good = {"coin": "BTC", "px": "1.0", "sz": "1.0", "side": "B", "time": 5, "startPosition": "0.0",
            "dir": "Open Long", "closedPnl": "0.0", "hash": "0xab", "oid": 1, "crossed": True,
            "fee": "0.1", "tid": 2, "feeToken": "USDC", "builderFee": None,
            "builder": None}  # fmt: skip
    lines = [
        nodefiles.block_line(10, 5, [("0xAA", good), ("0xbb", good)]),
        b"garbage\n",
        nodefiles.block_line(11, 6, [("0xaa", {**good, "px": "x"})]),
        nodefiles.block_line(14, 7, []),
        nodefiles.block_line(12, 8, [("0xaa", good)]),  # behind the last block: skipped
    ]
    offsets, at = [], 100
    for line in lines:
        at += len(line)
        offsets.append((at, line))
    batch, last, last_ms = parse_lines(offsets, 100, {"0xaa": 7}, 9)
    assert [f.tid for f in batch.fills[7]] == [2] and set(batch.fills) == {7}
    assert batch.fills[7][0].extra is None  # explicit nulls dropped, as the API sends it
    where = [
        (owner, reason.split(":")[0], offset) for owner, _, reason, offset in batch.quarantined
    ]
    assert where == [
        (None, "not JSON", 100 + len(lines[0])),
        (7, "px must be a decimal string, got 'x'", offsets[1][0]),
    ]
    assert batch.gaps == ["blocks 12..13 missing"] and last == 14 and last_ms == 7
    assert batch.lines == 5
