"""The per-wallet ingest cursor (`hl_ingest_cursor`): how far ingestion got.

`synced_until_ms` says every fill of the wallet up to that time is stored. It
only moves forward (GREATEST), and only in the transaction that stored the
fills it covers, so a crash between pages leaves a cursor that is behind,
never ahead: the next run re-fetches a little and stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

SELECT_CURSOR = """
SELECT wallet_id, synced_until_ms, last_fill_ms, fills_stored, history_truncated,
       last_success_at, last_error, last_error_at, reread_pending, complete_from
FROM hl_ingest_cursor WHERE wallet_id = %s
"""
# Moves the cursor forward with the fills of one page, in the transaction that stored them.
ADVANCE = """
INSERT INTO hl_ingest_cursor AS c
    (wallet_id, synced_until_ms, last_fill_ms, fills_stored, history_truncated)
VALUES (%(wallet_id)s, %(synced_until_ms)s, %(last_fill_ms)s, %(stored)s, %(truncated)s)
ON CONFLICT (wallet_id) DO UPDATE SET
    synced_until_ms = GREATEST(c.synced_until_ms, EXCLUDED.synced_until_ms),
    last_fill_ms = GREATEST(c.last_fill_ms, EXCLUDED.last_fill_ms),
    fills_stored = c.fills_stored + EXCLUDED.fills_stored,
    history_truncated = c.history_truncated OR EXCLUDED.history_truncated,
    updated_at = now()
"""
# A pass that re-read the wallet's whole reachable history (`reread`) clears the
# upgrade's re-read flag (migration 0008) with its success.
RECORD_SUCCESS = """
INSERT INTO hl_ingest_cursor AS c (wallet_id, last_success_at) VALUES (%(wallet_id)s, now())
ON CONFLICT (wallet_id) DO UPDATE SET
    last_success_at = now(), last_error = NULL, last_error_at = NULL, updated_at = now(),
    reread_pending = c.reread_pending AND NOT %(reread)s
"""
RECORD_ERROR = """
INSERT INTO hl_ingest_cursor AS c (wallet_id, last_error, last_error_at) VALUES (%s, %s, now())
ON CONFLICT (wallet_id) DO UPDATE SET
    last_error = EXCLUDED.last_error, last_error_at = now(), updated_at = now()
"""
# Every tracked wallet with what the scheduler's policy needs: recent activity and the
# last time anything (a success, an error, a queued ingest) happened to it.
SELECT_SCHEDULE = """
SELECT w.id, w.address, c.last_fill_ms,
       GREATEST(c.last_success_at, c.last_error_at, c.last_scheduled_at) AS last_attempt_at,
       coalesce(c.reread_pending, false), c.synced_until_ms IS NOT NULL
FROM wallets w
LEFT JOIN hl_ingest_cursor c ON c.wallet_id = w.id
WHERE EXISTS (SELECT 1 FROM org_wallets ow WHERE ow.wallet_id = w.id)
ORDER BY w.id
"""
MARK_SCHEDULED = """
INSERT INTO hl_ingest_cursor AS c (wallet_id, last_scheduled_at)
SELECT unnest(%s::bigint[]), now()
ON CONFLICT (wallet_id) DO UPDATE SET last_scheduled_at = now()
"""
# Progress of a sync: wallets that finished (either way) since it started, and fills stored.
SELECT_PROGRESS = """
SELECT count(*) FILTER (WHERE GREATEST(last_success_at, last_error_at) >= %(since)s)::integer,
       count(*) FILTER (WHERE last_error_at >= %(since)s)::integer,
       coalesce(sum(fills_stored), 0)::bigint
FROM hl_ingest_cursor WHERE wallet_id = ANY(%(wallet_ids)s)
"""
SELECT_NOW = "SELECT now()"
# Fills a file source stored: counted, and the last fill moved, but `synced_until_ms`
# is the API source's alone (it resumes from it when the node source stops).
NOTE_FILE_FILLS = """
INSERT INTO hl_ingest_cursor AS c (wallet_id, last_fill_ms, fills_stored)
VALUES (%(wallet_id)s, %(last_fill_ms)s, %(stored)s)
ON CONFLICT (wallet_id) DO UPDATE SET
    last_fill_ms = GREATEST(c.last_fill_ms, EXCLUDED.last_fill_ms),
    fills_stored = c.fills_stored + EXCLUDED.fills_stored,
    updated_at = now()
"""
NOTE_FILE_FILLS_MANY = """
INSERT INTO hl_ingest_cursor AS c (wallet_id, last_fill_ms, fills_stored)
SELECT w, l, n FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS t(w, l, n) ORDER BY w
ON CONFLICT (wallet_id) DO UPDATE SET
    last_fill_ms = GREATEST(c.last_fill_ms, EXCLUDED.last_fill_ms),
    fills_stored = c.fills_stored + EXCLUDED.fills_stored,
    updated_at = now()
"""
MARK_COMPLETE_FROM = """
UPDATE hl_ingest_cursor SET history_truncated = false, updated_at = now(),
    complete_from = LEAST(coalesce(complete_from, %(day)s), %(day)s)
WHERE wallet_id = %(wallet_id)s
"""
# An API pass from the start of the wallet's history that was never truncated stored
# every fill the wallet ever had: complete from its first fill's day (from the day its
# pass reached when it has none). A truncated history keeps what it had.
MARK_COMPLETE_FROM_START = """
UPDATE hl_ingest_cursor c SET updated_at = now(),
    complete_from = LEAST(coalesce(c.complete_from, s.day), s.day)
FROM (SELECT coalesce(
         (SELECT (to_timestamp(min(f.time) / 1000.0) AT TIME ZONE 'UTC')::date
          FROM hl_fills_raw f WHERE f.wallet_id = %(wallet_id)s),
         (SELECT (to_timestamp(synced_until_ms / 1000.0) AT TIME ZONE 'UTC')::date
          FROM hl_ingest_cursor WHERE wallet_id = %(wallet_id)s)) AS day) s
WHERE c.wallet_id = %(wallet_id)s AND NOT c.history_truncated AND s.day IS NOT NULL
"""
# The oldest fill the API could have given the wallet: the 10,000th most recent stored
# fill up to its cursor (later API passes only make this later, never earlier).
API_HORIZON = """
SELECT f.time FROM hl_fills_raw f JOIN hl_ingest_cursor c ON c.wallet_id = f.wallet_id
WHERE f.wallet_id = %(wallet_id)s AND f.time <= c.synced_until_ms
ORDER BY f.time DESC OFFSET %(skip)s LIMIT 1
"""


@dataclass(frozen=True)
class Cursor:
    wallet_id: int
    synced_until_ms: int | None
    last_fill_ms: int | None
    fills_stored: int
    history_truncated: bool
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    # The wallet's next pass re-reads its whole reachable history (migration 0008).
    reread_pending: bool
    # Every fill of the wallet from this UTC day on is stored (migration 0013).
    complete_from: date | None = None


@dataclass(frozen=True)
class ScheduleRow:
    wallet_id: int
    address: str
    last_fill_ms: int | None
    last_attempt_at: datetime | None
    reread_pending: bool = False
    # The wallet had an API pass: a live node source can take its fills over.
    api_synced: bool = False


@dataclass(frozen=True)
class Progress:
    finished: int
    failed: int
    fills_stored: int


def get_cursor(conn: psycopg.Connection, wallet_id: int) -> Cursor | None:
    row = conn.execute(SELECT_CURSOR, (wallet_id,)).fetchone()
    return Cursor(*row) if row else None


def advance(
    conn: psycopg.Connection,
    wallet_id: int,
    *,
    synced_until_ms: int,
    last_fill_ms: int | None,
    stored: int,
    truncated: bool = False,
) -> None:
    """Moves the cursor forward (never back) in the caller's transaction."""
    conn.execute(
        ADVANCE,
        {
            "wallet_id": wallet_id,
            "synced_until_ms": synced_until_ms,
            "last_fill_ms": last_fill_ms,
            "stored": stored,
            "truncated": truncated,
        },
    )


def note_file_fills(
    conn: psycopg.Connection, wallet_id: int, *, last_fill_ms: int, stored: int
) -> None:
    """Fills of the wallet stored from a node's files, in the transaction that stored them."""
    conn.execute(
        NOTE_FILE_FILLS, {"wallet_id": wallet_id, "last_fill_ms": last_fill_ms, "stored": stored}
    )


def note_file_fills_many(conn: psycopg.Connection, stored: dict[int, tuple[int, int]]) -> None:
    """`note_file_fills` for many wallets: wallet id → (last fill ms, fills stored)."""
    if stored:
        ids = sorted(stored)
        conn.execute(
            NOTE_FILE_FILLS_MANY,
            (ids, [stored[i][0] for i in ids], [stored[i][1] for i in ids]),
        )


def mark_complete_from(conn: psycopg.Connection, wallet_id: int, day: date) -> None:
    """Every fill of the wallet from `day` on is stored: its truncated flag is cleared."""
    conn.execute(MARK_COMPLETE_FROM, {"wallet_id": wallet_id, "day": day})


def mark_complete_from_start(conn: psycopg.Connection, wallet_id: int) -> None:
    """An API pass read the wallet's history from its start: unless it was truncated,
    every fill of the wallet is stored (`MARK_COMPLETE_FROM_START`)."""
    conn.execute(MARK_COMPLETE_FROM_START, {"wallet_id": wallet_id})


def api_horizon_ms(conn: psycopg.Connection, wallet_id: int, horizon: int = 10_000) -> int | None:
    """The time of the oldest fill the API's `horizon` most recent reached for the wallet
    (None: fewer stored, or never read through the API)."""
    row = conn.execute(API_HORIZON, {"wallet_id": wallet_id, "skip": horizon - 1}).fetchone()
    return int(row[0]) if row else None


def record_success(conn: psycopg.Connection, wallet_id: int, *, reread: bool = False) -> None:
    """The pass succeeded; `reread`: it read the wallet's whole reachable history."""
    conn.execute(RECORD_SUCCESS, {"wallet_id": wallet_id, "reread": reread})


def record_error(conn: psycopg.Connection, wallet_id: int, message: str) -> None:
    conn.execute(RECORD_ERROR, (wallet_id, message[:2000]))


def schedule_rows(conn: psycopg.Connection) -> list[ScheduleRow]:
    return [ScheduleRow(*row) for row in conn.execute(SELECT_SCHEDULE)]


def mark_scheduled(conn: psycopg.Connection, wallet_ids: Sequence[int]) -> None:
    if wallet_ids:
        conn.execute(MARK_SCHEDULED, (list(wallet_ids),))


def progress(conn: psycopg.Connection, wallet_ids: Sequence[int], since: datetime) -> Progress:
    row = conn.execute(SELECT_PROGRESS, {"since": since, "wallet_ids": list(wallet_ids)}).fetchone()
    assert row is not None
    return Progress(int(row[0]), int(row[1]), int(row[2]))


def database_now(conn: psycopg.Connection) -> datetime:
    """The database's clock, which every timestamp of this table is written with."""
    row = conn.execute(SELECT_NOW).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value
