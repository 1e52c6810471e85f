"""Reading a Hyperliquid node's fill files: pure, no database.

A non-validating node run with `--write-fills --batch-by-block` writes
`<root>/node_fills_by_block/hourly/{YYYYMMDD}/{H}` (the hour not zero-padded,
0 to 23), one JSON object per line per block (node README):

    {"local_time": "2025-07-27T08:50:10.334741319",
     "block_time": "2025-07-27T08:50:10.273720809",
     "block_number": 676607012,
     "events": [["0xuser", {fill}], ...]}

Times are ISO-8601 without a zone (UTC) with nanoseconds. Fills are in the
API's format plus `builder` and `deployerFee`, optional fields as explicit
nulls. Blocks without fills are written too (`"events": []`), so within the
stream block numbers are contiguous and a jump is a gap. Without
`--batch-by-block` (the older `node_fills/hourly/{date}/{H}`, also what the
public archive holds from 2025-05-25 to 2025-07-27) each line is one
`[user, fill]` pair. The public archive (bucket hl-mainnet-node-data) holds
the same hourly files LZ4-frame compressed (`H.lz4`); older hours only have
`node_trades`, without fees or closed PnL, which are not read.

A file being written may end in a partial line: `complete_lines` yields only
lines ending in a newline, with the byte offset after each, so a reader that
stores the offset with what it did resumes exactly after the last whole line.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import lz4.frame

BY_BLOCK = "node_fills_by_block"
PAIRS = "node_fills"
HOUR_MS = 3_600_000
_DAY_DIR = re.compile(r"^\d{8}$")
_HOUR_FILE = re.compile(r"^(\d{1,2})(\.lz4)?$")
READ_BUFFER = 1 << 20


class MalformedLine(ValueError):
    """A line that is not a block (or pair) of the node's fill format."""


@dataclass(frozen=True, slots=True)
class Block:
    """One line: a block (`number` set) or, in the pairs layout, one event (`number` None)."""

    number: int | None
    time_ms: int
    events: list[Any]


@dataclass(frozen=True, order=True)
class HourFile:
    hour_ms: int
    layout: str
    path: Path

    @property
    def compressed(self) -> bool:
        return self.path.suffix == ".lz4"


def node_time_ms(text: object) -> int:
    """Epoch milliseconds of `2025-07-27T08:50:10.273720809` (UTC, no zone)."""
    if not isinstance(text, str) or len(text) < 19:
        raise MalformedLine(f"block_time must be an ISO-8601 time, got {text!r}")
    try:
        moment = datetime.fromisoformat(text[:23]).replace(tzinfo=UTC)
    except ValueError:
        raise MalformedLine(f"block_time must be an ISO-8601 time, got {text!r}") from None
    return int(moment.timestamp() * 1000)


def parse_block(line: bytes) -> Block:
    """A by-block line, or `MalformedLine` saying what is wrong."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise MalformedLine(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedLine(f"a block must be a JSON object, got {type(obj).__name__}")
    number = obj.get("block_number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise MalformedLine(f"block_number must be a whole number, got {number!r}")
    events = obj.get("events")
    if not isinstance(events, list):
        raise MalformedLine(f"events must be a list, got {events!r}")
    return Block(number, node_time_ms(obj.get("block_time")), events)


def parse_pair(line: bytes) -> Block:
    """A `node_fills` line (`[user, fill]`) as a one-event block without a number."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise MalformedLine(f"not JSON: {exc}") from None
    if not isinstance(obj, list) or len(obj) != 2 or not isinstance(obj[1], dict):
        raise MalformedLine("a node_fills line must be [user, fill]")
    time_ms = obj[1].get("time")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int):
        raise MalformedLine(f"the fill's time must be an integer, got {time_ms!r}")
    return Block(None, time_ms, [obj])


def parse_line(line: bytes, layout: str) -> Block:
    return parse_block(line) if layout == BY_BLOCK else parse_pair(line)


def event_user(event: object) -> str | None:
    """The user of an event `[user, fill]`, lowercase, or None when it is not one."""
    if isinstance(event, list) and len(event) == 2 and isinstance(event[0], str):
        return event[0].lower()
    return None


def node_fill(raw: object) -> object:
    """The node's fill as the API sends it: the keys it writes as explicit nulls dropped
    (a fill seen by both sources is then stored with the same `extra`)."""
    if isinstance(raw, dict) and None in raw.values():
        return {k: v for k, v in raw.items() if v is not None}
    return raw


def hour_of(path_day: str, hour: int) -> int:
    return int(datetime.strptime(path_day, "%Y%m%d").replace(tzinfo=UTC).timestamp()) * 1000 + (
        hour * HOUR_MS
    )


def hour_files(root: str | Path, layouts: tuple[str, ...] = (BY_BLOCK,)) -> list[HourFile]:
    """The hourly fill files under `root` in time order (plain or `.lz4`)."""
    found: list[HourFile] = []
    for layout in layouts:
        base = Path(root) / layout / "hourly"
        if not base.is_dir():
            continue
        for day in base.iterdir():
            if not _DAY_DIR.match(day.name) or not day.is_dir():
                continue
            for entry in day.iterdir():
                m = _HOUR_FILE.match(entry.name)
                if m and 0 <= int(m.group(1)) <= 23:
                    found.append(HourFile(hour_of(day.name, int(m.group(1))), layout, entry))
    return sorted(found)


def relpath(root: str | Path, path: Path) -> str:
    return str(path.relative_to(root))


def open_hour(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is `.lz4`."""
    if path.suffix == ".lz4":
        return io.BufferedReader(lz4.frame.open(path, "rb"), READ_BUFFER)
    return path.open("rb", buffering=READ_BUFFER)


def complete_lines(
    f: IO[bytes], offset: int, limit: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(offset after the line, line) for each line ending in a newline from `offset`;
    a partial last line (being written) is never yielded. `f` must be at `offset`."""
    position = offset
    for count, line in enumerate(f, 1):
        if not line.endswith(b"\n"):
            return
        position += len(line)
        yield position, line
        if limit is not None and count >= limit:
            return


def seek(f: IO[bytes], offset: int) -> None:
    """Moves to `offset` (a decompressing file gets there by reading forward)."""
    if offset > 0:
        f.seek(offset)
