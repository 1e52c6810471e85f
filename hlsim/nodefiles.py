"""The simulated market's fills written as a Hyperliquid node writes them.

A non-validating node run with `--write-fills --batch-by-block` writes
`<data root>/node_fills_by_block/hourly/{YYYYMMDD}/{H}` (the hour is not
zero-padded: 0 to 23), one JSON object per line per block (node README):

    {"local_time": "2025-07-27T08:50:10.334741319",
     "block_time": "2025-07-27T08:50:10.273720809",
     "block_number": 676607012,
     "events": [["0xuser", {fill}], ...]}

Times are ISO-8601 without a timezone (UTC), with nanoseconds. A fill is in
the API's fill format plus `builder` and `deployerFee`, its optional fields
written as explicit nulls. Blocks without fills are written too, with
`"events": []`, so block numbers are contiguous within the stream. Without
`--batch-by-block` (the older `node_fills/hourly/{date}/{H}`), each line is
one `[user, fill]` pair.

Hyperliquid's public archive (a requester-pays bucket) keeps the same files
per hour, LZ4-frame compressed (`H.lz4`): `node_fills_by_block` from
2025-07-27 hour 8 on, `node_fills` from 2025-05-25 to then.

Here a block lasts `block_ms` (1 s by default, against about 80 ms on
mainnet: fewer lines, same shape); block `n` holds the fills with
`n * block_ms <= time < (n + 1) * block_ms` and its time is the last
millisecond of that span. `NodeWriter` appends the blocks as the market's
clock passes them (each hour into its own file); `write_archive` writes
whole past hours, plain or `.lz4`, in either layout.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lz4.frame

from hlsim.market import Market

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_BLOCK_MS = 1_000
BY_BLOCK = "node_fills_by_block"
PAIRS = "node_fills"
# Optional fields a node writes as explicit nulls when a fill has none.
NULLABLE = ("builderFee", "cloid", "twapId", "builder", "deployerFee")


def node_time(ms: int) -> str:
    """`2025-07-27T08:50:10.273000000`: ISO-8601, UTC without a zone, nanoseconds."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}000000"


def hour_relpath(hour_start_ms: int, layout: str = BY_BLOCK) -> str:
    """`node_fills_by_block/hourly/20250727/8` for the hour starting at `hour_start_ms`."""
    moment = datetime.fromtimestamp(hour_start_ms // 1000, UTC)
    return f"{layout}/hourly/{moment:%Y%m%d}/{moment.hour}"


def node_fill(raw: Any) -> Any:
    """The API fill as the node writes it: missing optional fields as explicit nulls."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for key in NULLABLE:
        out.setdefault(key, None)
    return out


def block_line(number: int, time_ms: int, events: Iterable[tuple[str, Any]]) -> bytes:
    line = {
        "local_time": node_time(time_ms + 50),
        "block_time": node_time(time_ms),
        "block_number": number,
        "events": [[user, node_fill(fill)] for user, fill in events],
    }
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def pair_line(user: str, fill: Any) -> bytes:
    return json.dumps([user, node_fill(fill)], separators=(",", ":")).encode() + b"\n"


def block_lines(market: Market, first_block: int, end_block: int, block_ms: int) -> list[bytes]:
    """The lines of blocks `first_block` to `end_block - 1`, empty blocks included."""
    by_block: dict[int, list[tuple[str, Any]]] = {}
    for user, fill in market.fills_between(first_block * block_ms, end_block * block_ms):
        by_block.setdefault(int(fill["time"]) // block_ms, []).append((user, fill))
    return [
        block_line(n, (n + 1) * block_ms - 1, by_block.get(n, ()))
        for n in range(first_block, end_block)
    ]


def write_archive(
    market: Market,
    root: str | Path,
    start_ms: int,
    end_ms: int,
    *,
    block_ms: int = DEFAULT_BLOCK_MS,
    compress: bool = True,
    layout: str = BY_BLOCK,
) -> list[Path]:
    """Writes every whole hour from `start_ms`'s hour to `end_ms`'s (excluded) as the
    public archive lays it out; returns the files written."""
    if HOUR_MS % block_ms:
        raise ValueError(f"block_ms must divide an hour, got {block_ms}")
    written: list[Path] = []
    hour = start_ms // HOUR_MS * HOUR_MS
    while hour + HOUR_MS <= end_ms:
        path = Path(root) / hour_relpath(hour, layout)
        if compress:
            path = path.with_name(path.name + ".lz4")
        path.parent.mkdir(parents=True, exist_ok=True)
        if layout == BY_BLOCK:
            lines = block_lines(market, hour // block_ms, (hour + HOUR_MS) // block_ms, block_ms)
        else:
            lines = [pair_line(u, f) for u, f in market.fills_between(hour, hour + HOUR_MS)]
        data = b"".join(lines)
        if compress:
            data = lz4.frame.compress(data)
        path.write_bytes(data)
        written.append(path)
        hour += HOUR_MS
    return written


class NodeWriter:
    """Appends the market's blocks to the live hourly files as its clock passes them."""

    def __init__(
        self,
        market: Market,
        root: str | Path,
        *,
        start_ms: int,
        block_ms: int = DEFAULT_BLOCK_MS,
    ) -> None:
        if HOUR_MS % block_ms:
            raise ValueError(f"block_ms must divide an hour, got {block_ms}")
        self.market = market
        self.root = Path(root)
        self.block_ms = block_ms
        self.next_block = start_ms // block_ms
        self.blocks_written = 0
        self.fills_written = 0
        self._lock = threading.Lock()

    def path_of_block(self, block: int) -> Path:
        return self.root / hour_relpath(block * self.block_ms // HOUR_MS * HOUR_MS)

    def write_until(self, now_ms: int) -> int:
        """Advances the market to `now_ms` and appends every block that ended by then;
        returns how many blocks it wrote."""
        with self._lock:
            self.market.advance(now_ms)
            end_block = (now_ms + 1) // self.block_ms
            written = 0
            while self.next_block < end_block:
                path = self.path_of_block(self.next_block)
                hour_end = (self.next_block * self.block_ms // HOUR_MS + 1) * HOUR_MS
                last = min(end_block, hour_end // self.block_ms)
                lines = block_lines(self.market, self.next_block, last, self.block_ms)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("ab") as f:
                    f.write(b"".join(lines))
                self.fills_written += sum(line.count(b'["0x') for line in lines)
                written += last - self.next_block
                self.next_block = last
            self.blocks_written += written
            return written

    def append_raw(self, data: bytes) -> Path:
        """Appends bytes as they are to the current hour's file (tests: malformed lines)."""
        with self._lock:
            path = self.path_of_block(self.next_block)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.write(data)
            return path


def run_writer(
    writer: NodeWriter, clock: Callable[[], int], stop: threading.Event, every_s: float = 0.2
) -> threading.Thread:
    """Writes the blocks in real time, in a daemon thread, until `stop` is set."""

    def loop() -> None:
        while not stop.is_set():
            writer.write_until(clock())
            stop.wait(every_s)

    thread = threading.Thread(target=loop, daemon=True, name="hlsim-node")
    thread.start()
    return thread


def wall_ms() -> int:
    return int(time.time() * 1000)


def ensure_dir(root: str | Path) -> Path:
    path = Path(root)
    os.makedirs(path / BY_BLOCK / "hourly", exist_ok=True)
    return path
