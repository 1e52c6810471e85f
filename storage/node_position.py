"""Positions of the file-reading fill sources (`hl_node_position`).

One row per source: `node` (the live follower, jobs.node_source) or
`archive:<root>` (an archive import, jobs.backfill). A position names the file
(relative to the source's root), the byte offset after the last whole line
whose fills are stored, and the last block read. It is saved in the same
transaction as the fills it covers, so after a crash the source resumes
exactly after what it stored: nothing is lost, nothing read twice (and a fill
read twice would still be stored once, storage.fills being idempotent).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

SELECT = """
SELECT source, file, byte_offset, last_block, last_block_ms, gaps, last_gap, lines,
       fills_stored, done, advanced_at, updated_at
FROM hl_node_position WHERE source = %s
"""
SELECT_ALL = """
SELECT source, file, byte_offset, last_block, last_block_ms, gaps, last_gap, lines,
       fills_stored, done, advanced_at, updated_at
FROM hl_node_position ORDER BY source
"""
SAVE = """
INSERT INTO hl_node_position AS p
    (source, file, byte_offset, last_block, last_block_ms, gaps, last_gap, lines,
     fills_stored, done)
VALUES (%(source)s, %(file)s, %(offset)s, %(block)s, %(block_ms)s, %(gaps)s, %(gap)s,
        %(lines)s, %(stored)s, %(done)s)
ON CONFLICT (source) DO UPDATE SET
    file = EXCLUDED.file, byte_offset = EXCLUDED.byte_offset,
    last_block = coalesce(EXCLUDED.last_block, p.last_block),
    last_block_ms = coalesce(EXCLUDED.last_block_ms, p.last_block_ms),
    gaps = p.gaps + EXCLUDED.gaps, last_gap = coalesce(EXCLUDED.last_gap, p.last_gap),
    lines = p.lines + EXCLUDED.lines, fills_stored = p.fills_stored + EXCLUDED.fills_stored,
    done = EXCLUDED.done, advanced_at = now(), updated_at = now()
"""
DELETE = "DELETE FROM hl_node_position WHERE source = %s"
# Whether a live node source moved within the last `stale_s` seconds.
LIVE = """
SELECT EXISTS (
    SELECT 1 FROM hl_node_position
    WHERE source = %s AND advanced_at > now() - make_interval(secs => %s)
)
"""
# The wallets each org tracks (of every org, or of some: `WHERE ow.org_id = ANY(%s)`).
TRACKED_BY_ORG = """
SELECT ow.org_id, w.address, w.id FROM org_wallets ow JOIN wallets w ON w.id = ow.wallet_id
"""
# Every tracked wallet: address → id.
TRACKED = """
SELECT w.address, w.id FROM wallets w
WHERE EXISTS (SELECT 1 FROM org_wallets ow WHERE ow.wallet_id = w.id)
"""


@dataclass(frozen=True)
class Position:
    source: str
    file: str
    byte_offset: int
    last_block: int | None
    last_block_ms: int | None
    gaps: int
    last_gap: str | None
    lines: int
    fills_stored: int
    done: bool
    advanced_at: datetime
    updated_at: datetime


def get(conn: psycopg.Connection, source: str) -> Position | None:
    row = conn.execute(SELECT, (source,)).fetchone()
    return Position(*row) if row else None


def all_positions(conn: psycopg.Connection) -> list[Position]:
    return [Position(*row) for row in conn.execute(SELECT_ALL)]


def save(
    conn: psycopg.Connection,
    source: str,
    *,
    file: str,
    offset: int,
    last_block: int | None,
    last_block_ms: int | None,
    lines: int = 0,
    stored: int = 0,
    gaps: int = 0,
    last_gap: str | None = None,
    done: bool = False,
) -> None:
    """Moves the source's position, in the caller's transaction (the one storing the fills)."""
    conn.execute(
        SAVE,
        {
            "source": source,
            "file": file,
            "offset": offset,
            "block": last_block,
            "block_ms": last_block_ms,
            "gaps": gaps,
            "gap": last_gap,
            "lines": lines,
            "stored": stored,
            "done": done,
        },
    )


def forget(conn: psycopg.Connection, source: str) -> None:
    conn.execute(DELETE, (source,))


def is_live(conn: psycopg.Connection, source: str, stale_s: float) -> bool:
    row = conn.execute(LIVE, (source, stale_s)).fetchone()
    return bool(row and row[0])


def tracked_wallets(conn: psycopg.Connection) -> dict[str, int]:
    """Every tracked wallet's address (lowercase) and id."""
    return {str(address): int(wallet_id) for address, wallet_id in conn.execute(TRACKED)}


def tracked_by_org(
    conn: psycopg.Connection, org_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, dict[str, int]]:
    """The wallets (address → id) each org tracks: of every org, or of `org_ids` (an org
    tracking none, or gone, maps to nothing)."""
    if org_ids is None:
        rows = conn.execute(TRACKED_BY_ORG)
    else:
        rows = conn.execute(TRACKED_BY_ORG + " WHERE ow.org_id = ANY(%s)", (list(org_ids),))
    out: dict[uuid.UUID, dict[str, int]] = {org: {} for org in org_ids or ()}
    for org, address, wallet_id in rows:
        out.setdefault(org, {})[str(address)] = int(wallet_id)
    return out
