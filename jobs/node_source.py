"""`hl-analytics node-ingest`: the fills of tracked wallets from a node's fill files.

The info API lets one IP spend about 1,200 weight a minute and reaches only a
wallet's 10,000 most recent fills; a non-validating node run with
`--write-fills --batch-by-block` writes every fill of the chain, block by
block, to `node_fills_by_block/hourly/{YYYYMMDD}/{H}` (format: jobs.node_files).
About 4.47 million fills a day on mainnet (2025-11-01: 2,235,359 trades, two
sides each, 33,654 traders), some 186,000 fills and 44,000 block lines an hour.

The follower reads the current hour's file from its position (storage.node_position)
in batches of whole lines and, per batch, in one transaction: stores the fills of
tracked wallets through storage.fills (the API source's idempotent path, same
identity, so a fill both sources bring is stored once), marks the wallet-days
pending and queues their rollups as an API ingest does (jobs.actors), quarantines
what it cannot read (a malformed line with no wallet, a malformed fill of a
tracked wallet with it, both with file and offset), and saves the position after
the batch's last whole line. So:

- a partial last line (being written) is never read: it is read once whole;
- a crash loses nothing and doubles nothing: the position is behind or exact;
- at the end of a file it moves to the next hour's file once that exists (the
  node writes hours in order), across days;
- a file deleted or pruned under it, or a missing hour, is skipped to the next
  file; the block numbers, contiguous in the stream (empty blocks are written),
  then jump, and any jump is a gap: the API source is asked to cover it by
  queuing an ingest of every tracked wallet (it resumes from the wallet's API
  cursor, which the node never moves, so it reads the gap's time; the 10,000-fill
  horizon is its limit). Conservative: a gap costs one API pass per wallet;
- fills of users nobody tracks are skipped (never attached to a wallet);
- tracking changes reach it through the change notifications it LISTENs to
  (jobs.node_tracked): a wallet tracked now is followed from the next batch on,
  and the wait when caught up ends at once; tracking it also queued its one API
  pass over its reachable history (jobs.tracking), which the node then follows.

On its first start it begins at the oldest file present.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import psycopg

from hl_core.errors import HLAnalyticsError
from hl_core.settings import Settings
from jobs import actors, node_files
from jobs.errors import check_positive
from jobs.hl_parse import InvalidFill, parse_fill
from jobs.node_files import BY_BLOCK, HourFile, MalformedLine
from jobs.node_tracked import TrackedWallets
from jobs.pipeline import Pipeline, build
from storage import cursor, embedded, fills, node_position, orgs, rollups
from storage.db import connect, errors
from storage.errors import DatabaseUnavailable, first_line
from storage.fills import Fill

log = logging.getLogger(__name__)

SOURCE = "node"
DEFAULT_POLL_S = 0.5
BATCH_LINES = 5_000
APP_NAME = "hl-analytics-node-ingest"
TAIL_GRACE_S = 2.0


class NodeDirInvalid(HLAnalyticsError):
    """The node directory does not exist or holds no fill files."""


def check_root(root: str | Path) -> list[HourFile]:
    """The root's fill files; NodeDirInvalid (one line naming what was expected) if none."""
    path = Path(root)
    expected = (
        f"{BY_BLOCK}/hourly/YYYYMMDD/H, written by a node run with --write-fills --batch-by-block"
    )
    if not path.is_dir():
        raise NodeDirInvalid(
            f"{root}: no such directory (expected a node's data root holding {expected})"
        )
    found = node_files.hour_files(path)
    if not found:
        raise NodeDirInvalid(f"{root} holds no fill files (expected {expected})")
    return found


@dataclass
class Batch:
    """What one batch of lines brings, before it is stored."""

    fills: dict[int, list[Fill]] = field(default_factory=lambda: defaultdict(list))
    quarantined: list[tuple[int | None, object, str, int]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    lines: int = 0


@dataclass(frozen=True)
class Step:
    lines: int
    stored: int
    moved: bool  # moved to another file

    @property
    def progressed(self) -> bool:
        return self.lines > 0 or self.moved


def parse_lines(
    lines: list[tuple[int, bytes]],
    start_offset: int,
    tracked: dict[str, int],
    last_block: int | None,
    layout: str = BY_BLOCK,
) -> tuple[Batch, int | None, int | None]:
    """Splits whole lines into the fills of tracked wallets, quarantined items and gaps;
    returns the batch and the last block's number and time."""
    batch = Batch()
    last_ms: int | None = None
    offset = start_offset
    for after, line in lines:
        at, offset = offset, after
        batch.lines += 1
        try:
            block = node_files.parse_line(line, layout)
        except MalformedLine as exc:
            batch.quarantined.append((None, line.decode("utf-8", "replace"), str(exc), at))
            continue
        if block.number is not None:
            if last_block is not None and block.number <= last_block:
                continue  # already stored (a node that wrote a block again)
            if last_block is not None and block.number != last_block + 1:
                batch.gaps.append(f"blocks {last_block + 1}..{block.number - 1} missing")
            last_block = block.number
        last_ms = block.time_ms
        for event in block.events:
            user = node_files.event_user(event)
            if user is None:
                batch.quarantined.append((None, event, "an event must be [user, fill]", at))
                continue
            wallet_id = tracked.get(user)
            if wallet_id is None:
                continue
            try:
                batch.fills[wallet_id].append(parse_fill(node_files.node_fill(event[1])))
            except InvalidFill as exc:
                batch.quarantined.append((wallet_id, event[1], str(exc), at))
    return batch, last_block, last_ms


def store_batch(p: Pipeline, conn: psycopg.Connection, batch: Batch, rel: str) -> int:
    """Stores a batch's fills of every wallet at once (storage.fills.insert_many: the same
    idempotent insert as an API page's, one statement for all wallets), marks the
    wallet-days that received new fills pending and sends their days' rollups (rows
    first, messages second, as jobs.actors.queue_wallet_days), counts the fills on the
    wallets' cursors and quarantines what could not be read; in the caller's
    transaction. Returns how many fills were new."""
    results = fills.insert_many(conn, batch.fills)
    if results:
        rollups.add_pending_many(
            conn, [(w, day) for w, r in results.items() for day in r.new_per_day]
        )
        actors.send_wallet_days_rollups(
            p, conn, {day for r in results.values() for day in r.new_per_day}
        )
        cursor.note_file_fills_many(
            conn, {w: (r.last_fill_ms, r.inserted) for w, r in results.items()}
        )
    for owner, raw, reason, at in batch.quarantined:
        fills.quarantine_at(conn, owner, raw, reason, file=rel, offset=at)
    return sum(r.inserted for r in results.values())


class NodeFollower:
    """Follows the node's files under `root`, one batch per `step`."""

    def __init__(
        self,
        p: Pipeline,
        root: str | Path,
        *,
        source: str = SOURCE,
        batch_lines: int = BATCH_LINES,
        tracked: TrackedWallets | None = None,
    ) -> None:
        self.p = p
        self.root = Path(root)
        self.source = source
        self.batch_lines = batch_lines
        self.tracked = tracked or TrackedWallets(p.database_url)
        # (file, size, when first seen) of a partial last line found once the next hour's
        # file exists: quarantined only if it stays so for TAIL_GRACE_S (a node may
        # flush the end of an hour after opening the next one).
        self._tail: tuple[Path, int, float] | None = None

    def step(self, conn: psycopg.Connection) -> Step:
        """Stores the next batch of whole lines, or moves to the next file; `conn` in autocommit."""
        tracked = self.tracked.current(conn)
        pos = node_position.get(conn, self.source)
        files = node_files.hour_files(self.root)
        if pos is None:
            if not files:
                return Step(0, 0, False)
            current, offset, last_block = files[0], 0, None
        else:
            path = self.root / pos.file
            found = next((f for f in files if f.path == path), None)
            if found is None:
                return self._skip_missing(conn, pos, files)
            current, offset, last_block = found, pos.byte_offset, pos.last_block
        lines = self._read(current.path, offset)
        if lines:
            return self._store(conn, current, offset, lines, last_block, tracked)
        later = [f for f in files if f.hour_ms > current.hour_ms]
        if not later:
            return Step(0, 0, False)
        if not self._tail_settled(current, offset):
            return Step(0, 0, False)
        return self._next_file(conn, current, offset, later[0], pos)

    def close(self) -> None:
        self.tracked.close()

    def _tail_settled(self, current: HourFile, offset: int) -> bool:
        """Whether the bytes after `offset` (none, or a partial line) stopped changing."""
        try:
            size = current.path.stat().st_size
        except FileNotFoundError:
            return True
        if size <= offset or current.compressed:
            return True
        now = time.monotonic()
        if self._tail is None or self._tail[:2] != (current.path, size):
            self._tail = (current.path, size, now)
            return False
        return now - self._tail[2] >= TAIL_GRACE_S

    def _read(self, path: Path, offset: int) -> list[tuple[int, bytes]]:
        try:
            with node_files.open_hour(path) as f:
                node_files.seek(f, offset)
                return list(node_files.complete_lines(f, offset, self.batch_lines))
        except FileNotFoundError:
            return []

    def _store(
        self,
        conn: psycopg.Connection,
        current: HourFile,
        offset: int,
        lines: list[tuple[int, bytes]],
        last_block: int | None,
        tracked: dict[str, int],
    ) -> Step:
        added = self.tracked.take_added()
        batch, block, block_ms = parse_lines(lines, offset, tracked, last_block)
        rel = node_files.relpath(self.root, current.path)
        try:
            with conn.transaction():
                stored = store_batch(self.p, conn, batch, rel)
                if added:
                    with self.p.broker.transaction(conn):
                        actors.send_ingests(self.p, added)
                if batch.gaps:
                    self._cover_gap(conn, tracked, batch.gaps[-1])
                node_position.save(
                    conn,
                    self.source,
                    file=rel,
                    offset=lines[-1][0],
                    last_block=block,
                    last_block_ms=block_ms,
                    lines=batch.lines,
                    stored=stored,
                    gaps=len(batch.gaps),
                    last_gap=f"{rel}: {batch.gaps[-1]}" if batch.gaps else None,
                )
        except BaseException:
            self.tracked.give_back(added)  # queued with a later batch instead
            raise
        return Step(batch.lines, stored, False)

    def _cover_gap(self, conn: psycopg.Connection, tracked: dict[str, int], what: str) -> None:
        log.warning(
            "gap in the node's fills (%s): asking the API source for %d tracked wallet(s)",
            what,
            len(tracked),
            extra={"action": "node_gap", "gap": what, "wallets": len(tracked)},
        )
        owners = orgs.fair_orgs(conn, list(tracked.values()))
        keys = {a: str(owners[i]) for a, i in tracked.items() if i in owners}
        with self.p.broker.transaction(conn):
            actors.send_ingests(self.p, sorted(tracked), fair_keys=keys)

    def _next_file(
        self,
        conn: psycopg.Connection,
        current: HourFile,
        offset: int,
        following: HourFile,
        pos: node_position.Position | None,
    ) -> Step:
        """The current hour is over (a later file exists): bytes left without a newline
        are a truncated last line, quarantined; then the position moves to `following`."""
        rel = node_files.relpath(self.root, current.path)
        with conn.transaction():
            try:
                size = current.path.stat().st_size
            except FileNotFoundError:
                size = offset
            if size > offset and not current.compressed:
                with current.path.open("rb") as f:
                    f.seek(offset)
                    tail = f.read(64_000)
                fills.quarantine_at(
                    conn,
                    None,
                    tail.decode("utf-8", "replace"),
                    "truncated last line: the next hour's file exists",
                    file=rel,
                    offset=offset,
                )
            if following.hour_ms != current.hour_ms + node_files.HOUR_MS:
                log.warning(
                    "hour files missing between %s and %s",
                    rel,
                    node_files.relpath(self.root, following.path),
                    extra={"action": "node_missing_hour"},
                )
            node_position.save(
                conn,
                self.source,
                file=node_files.relpath(self.root, following.path),
                offset=0,
                last_block=pos.last_block if pos else None,
                last_block_ms=pos.last_block_ms if pos else None,
            )
        return Step(0, 0, True)

    def _skip_missing(
        self, conn: psycopg.Connection, pos: node_position.Position, files: list[HourFile]
    ) -> Step:
        """The position's file is gone (pruned or deleted): on to the next one; the jump
        in block numbers its first block shows is the gap."""
        gone_ms = _hour_of_rel(pos.file)
        later = [f for f in files if gone_ms is None or f.hour_ms > gone_ms]
        target = later[0] if later else None
        if target is None:
            return Step(0, 0, False)
        log.warning(
            "%s is gone; continuing with %s",
            pos.file,
            node_files.relpath(self.root, target.path),
            extra={"action": "node_file_gone"},
        )
        with conn.transaction():
            node_position.save(
                conn,
                self.source,
                file=node_files.relpath(self.root, target.path),
                offset=0,
                last_block=pos.last_block,
                last_block_ms=pos.last_block_ms,
            )
        return Step(0, 0, True)


def _hour_of_rel(rel: str) -> int | None:
    """The hour start of `node_fills_by_block/hourly/YYYYMMDD/H`, or None."""
    parts = Path(rel).parts
    if len(parts) < 4:
        return None
    try:
        return node_files.hour_of(parts[-2], int(parts[-1].removesuffix(".lz4")))
    except ValueError:
        return None


def follow(
    p: Pipeline,
    root: str | Path,
    stop: threading.Event,
    *,
    poll_s: float = DEFAULT_POLL_S,
    once: bool = False,
    source: str = SOURCE,
    tracked: TrackedWallets | None = None,
) -> None:
    """Steps until `stop` is set (or, with `once`, until caught up); a lost database is
    waited out. Caught up, it looks again every `poll_s` or as soon as a tracking
    change is notified."""
    follower = NodeFollower(p, root, source=source, tracked=tracked)
    conn: psycopg.Connection | None = None
    try:
        while not stop.is_set():
            try:
                with errors():
                    if conn is None or conn.closed:
                        conn = connect(p.database_url, autocommit=True, application_name=APP_NAME)
                    result = follower.step(conn)
            except DatabaseUnavailable as exc:
                log.warning(
                    "database unavailable (%s); retrying in %.1f s",
                    first_line(exc),
                    poll_s,
                    extra={"action": "node_db_unavailable"},
                )
                if conn is not None:
                    conn.close()
                    conn = None
                stop.wait(poll_s)
                continue
            if result.progressed:
                continue
            if once:
                return
            follower.tracked.wait(poll_s, stop)
    finally:
        follower.close()
        if conn is not None:
            conn.close()


def lag_s(position: node_position.Position, now: datetime | None = None) -> float | None:
    """Now minus the last block's time, in seconds."""
    if position.last_block_ms is None:
        return None
    now_ms = (now or datetime.now(UTC)).timestamp() * 1000
    return max(0.0, (now_ms - position.last_block_ms) / 1000)


def run_node_ingest(settings: Settings, *, node_dir: str, poll_s: float, once: bool) -> int:
    """`hl-analytics node-ingest`: follows the node's files until SIGTERM or Ctrl-C."""
    check_positive("poll", poll_s, NodeDirInvalid)
    check_root(node_dir)
    url = embedded.database_url(settings)
    p = build(settings, url, pool_size=1)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"node-ingest: following {node_dir} (a look every {poll_s:g} s when caught up)", flush=True
    )
    started = time.monotonic()
    try:
        follow(p, node_dir, stop, poll_s=poll_s, once=once)
    finally:
        p.close()
    log.info("node-ingest stopped after %.0f s", time.monotonic() - started)
    return 0
