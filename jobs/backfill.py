"""`hl-analytics backfill --archive DIR`: tracked wallets' fills from Hyperliquid's archive.

Hyperliquid publishes the fills its nodes write, per hour, in a requester-pays
bucket (hl-mainnet-node-data): `node_fills_by_block/hourly/YYYYMMDD/H.lz4`
from 2025-07-27 hour 8 on, `node_fills/hourly/YYYYMMDD/H.lz4` (one
`[user, fill]` pair a line) from 2025-05-25 to then; older hours only hold
`node_trades`, without fees or closed PnL, which are not imported. Files are
LZ4 frames; plain files of the same layout are read too (format:
jobs.node_files). The API reaches only a wallet's 10,000 most recent fills;
the archive reaches back to 2025-05-25.

Every archived fill of a tracked wallet is stored through storage.fills (the
idempotent path of the other sources: a fill the API or the node also brought
is stored once), its wallet-days marked pending and rolled up as an ingest's
are. The position (file, offset in the decompressed bytes) is saved with each
batch of fills (storage.node_position, source `archive:<dir>:<org>:<from>:<to>`),
so a crashed run resumes where it stopped; a finished run marks the position
done, and running it again reads everything again and stores nothing twice.

A truncated or corrupt `.lz4` file is reported, its whole lines before the
damage imported, and the rest of the archive imported. When every hour from
the archive's first to its last is present and whole, a wallet whose API history
starts within that span (its 10,000th most recent fill is not after the archive's
end) has every fill from the archive's first day on: its `truncated` flag is
cleared and that day recorded (`hl_ingest_cursor.complete_from`).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

import psycopg

from hl_core.errors import HLAnalyticsError
from hl_core.settings import Settings
from jobs import node_files
from jobs.node_files import BY_BLOCK, PAIRS, HourFile
from jobs.node_source import parse_lines, store_batch
from jobs.pipeline import Pipeline, build
from storage import cursor, embedded, node_position, orgs
from storage.db import borrow

BATCH_LINES = 20_000


class ArchiveInvalid(HLAnalyticsError):
    """The archive directory does not exist or holds no fill files in the range."""


@dataclass
class BackfillReport:
    files: int = 0
    lines: int = 0
    stored: int = 0
    damaged: list[str] = field(default_factory=list)
    missing_hours: int = 0
    complete_from: date | None = None
    wallets_completed: int = 0


def archive_files(root: Path, first: date | None, last: date | None) -> list[HourFile]:
    """The archive's hour files in order, one per hour (the by-block one when both exist)."""
    expected = (
        f"{BY_BLOCK}/hourly/YYYYMMDD/H[.lz4] or {PAIRS}/hourly/YYYYMMDD/H[.lz4], "
        "as Hyperliquid's archive lays them out"
    )
    if not root.is_dir():
        raise ArchiveInvalid(f"{root}: no such directory (expected {expected})")
    by_hour: dict[int, HourFile] = {}
    for f in node_files.hour_files(root, (PAIRS, BY_BLOCK)):
        by_hour[f.hour_ms] = f  # BY_BLOCK listed last: it wins an hour both hold
    if not by_hour:
        raise ArchiveInvalid(f"{root} holds no fill files (expected {expected})")
    found = [by_hour[h] for h in sorted(by_hour)]
    return [
        f
        for f in found
        if (first is None or _day(f) >= first) and (last is None or _day(f) <= last)
    ]


def _day(f: HourFile) -> date:
    return datetime.fromtimestamp(f.hour_ms / 1000, UTC).date()


def source_name(root: Path, org_id: uuid.UUID | None, first: date | None, last: date | None) -> str:
    return f"archive:{root.resolve()}:{org_id or 'all'}:{first or ''}:{last or ''}"


def backfill(
    p: Pipeline,
    conn: psycopg.Connection,
    root: str | Path,
    *,
    org_id: uuid.UUID | None = None,
    first: date | None = None,
    last: date | None = None,
    out: TextIO = sys.stdout,
    batch_lines: int = BATCH_LINES,
) -> BackfillReport:
    """Imports the archive's fills of the tracked wallets; `conn` in autocommit mode."""
    root = Path(root)
    every = archive_files(root, None, None)
    files = archive_files(root, first, last)
    if not files:
        raise ArchiveInvalid(
            f"{root} holds no fill files from {first or 'the start'} to {last or 'the end'}"
        )
    if org_id is not None:
        orgs.get_org(conn, org_id)  # OrgNotFound, one line
        tracked = {w.address: w.id for w in orgs.tracked_wallets(conn, org_id)}
    else:
        tracked = node_position.tracked_wallets(conn)
    source = source_name(root, org_id, first, last)
    pos = node_position.get(conn, source)
    start, start_offset = 0, 0
    if pos is not None and not pos.done:
        rels = [node_files.relpath(root, f.path) for f in files]
        if pos.file in rels:
            start, start_offset = rels.index(pos.file), pos.byte_offset
            print(f"resuming at {pos.file}, byte {pos.byte_offset}", file=out)
    report = BackfillReport()
    for index, hour in enumerate(files, 1):
        if index - 1 < start:
            continue
        rel = node_files.relpath(root, hour.path)
        offset = start_offset if index - 1 == start else 0
        lines, stored, damage = _import_file(
            p, conn, source, root, hour, offset, tracked, batch_lines
        )
        report.files += 1
        report.lines += lines
        report.stored += stored
        if damage:
            report.damaged.append(f"{rel}: {damage}")
            print(
                f"warning: {rel} is damaged ({damage}); its whole lines before were imported",
                file=out,
            )
        print(
            f"[{index}/{len(files)}] {rel}: {lines} line(s), {stored} new fill(s) "
            f"({report.stored} in all)",
            file=out,
            flush=True,
        )
    hours = [f.hour_ms for f in every]
    report.missing_hours = (hours[-1] - hours[0]) // node_files.HOUR_MS + 1 - len(hours)
    with conn.transaction():
        if not report.damaged and report.missing_hours == 0 and _covers_all(files, every):
            report.complete_from = _day(every[0])
            end_ms = every[-1].hour_ms + node_files.HOUR_MS
            for wallet_id in tracked.values():
                horizon = cursor.api_horizon_ms(conn, wallet_id)
                if horizon is not None and horizon <= end_ms:
                    cursor.mark_complete_from(conn, wallet_id, report.complete_from)
                    report.wallets_completed += 1
        last_rel = node_files.relpath(root, files[-1].path)
        node_position.save(
            conn, source, file=last_rel, offset=0, last_block=None, last_block_ms=None, done=True
        )
    return report


def _covers_all(files: Sequence[HourFile], every: Sequence[HourFile]) -> bool:
    return (
        bool(files)
        and files[0].hour_ms == every[0].hour_ms
        and files[-1].hour_ms == every[-1].hour_ms
    )


def _import_file(
    p: Pipeline,
    conn: psycopg.Connection,
    source: str,
    root: Path,
    hour: HourFile,
    offset: int,
    tracked: dict[str, int],
    batch_lines: int,
) -> tuple[int, int, str | None]:
    """Imports one file from `offset`; returns (lines, fills stored, damage or None)."""
    rel = node_files.relpath(root, hour.path)
    lines_done = stored = 0
    damage: str | None = None
    try:
        f = node_files.open_hour(hour.path)
    except OSError as exc:
        return 0, 0, str(exc)
    with f:
        try:
            node_files.seek(f, offset)
        except (EOFError, RuntimeError, OSError) as exc:
            return 0, 0, f"{type(exc).__name__}: {exc}"
        iterator = node_files.complete_lines(f, offset)
        while True:
            batch: list[tuple[int, bytes]] = []
            try:
                for item in iterator:
                    batch.append(item)
                    if len(batch) >= batch_lines:
                        break
            except (EOFError, RuntimeError, OSError) as exc:
                damage = f"{type(exc).__name__}: {exc}"
            if batch:
                stored += _store(p, conn, source, rel, hour.layout, offset, batch, tracked)
                lines_done += len(batch)
                offset = batch[-1][0]
            if damage or len(batch) < batch_lines:
                break
    return lines_done, stored, damage


def _store(
    p: Pipeline,
    conn: psycopg.Connection,
    source: str,
    rel: str,
    layout: str,
    offset: int,
    lines: list[tuple[int, bytes]],
    tracked: dict[str, int],
) -> int:
    batch, block, block_ms = parse_lines(lines, offset, tracked, None, layout)
    with conn.transaction():
        stored = store_batch(p, conn, batch, rel)
        node_position.save(
            conn,
            source,
            file=rel,
            offset=lines[-1][0],
            last_block=block,
            last_block_ms=block_ms,
            lines=batch.lines,
            stored=stored,
        )
    return stored


def run_backfill(
    settings: Settings,
    *,
    archive_dir: str,
    org_id: uuid.UUID | None,
    first: date | None,
    last: date | None,
) -> int:
    """`hl-analytics backfill --archive DIR`: prints progress per file, then a summary."""
    root = Path(archive_dir)
    archive_files(root, first, last)  # a bad directory is an error before anything opens
    url = embedded.database_url(settings)
    p = build(settings, url, pool_size=1)
    try:
        with borrow(p.pool) as conn:
            report = backfill(p, conn, root, org_id=org_id, first=first, last=last)
    finally:
        p.close()
    print(
        f"backfill done: {report.files} file(s), {report.lines} line(s), "
        f"{report.stored} new fill(s) stored"
        + (f", {len(report.damaged)} damaged file(s)" if report.damaged else "")
        + (f", {report.missing_hours} hour(s) missing" if report.missing_hours else "")
        + (
            f"; {report.wallets_completed} wallet(s) complete from {report.complete_from}"
            if report.complete_from
            else ""
        ),
        flush=True,
    )
    return 0
