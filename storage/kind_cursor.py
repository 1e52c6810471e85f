"""The cursor of each data kind other than fills (`hl_kind_cursor`, migration 0015):
`funding`, `positions` and `ledger`.

`synced_until_ms` says every item of the kind up to that time is stored (for
`positions`: the latest snapshot's time); it moves only forward (GREATEST) and
only in the transaction that stored what it covers, like the fills' cursor
(storage.cursor). The last success, last error and when the scheduler last
queued the kind are kept beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

FUNDING = "funding"
POSITIONS = "positions"
LEDGER = "ledger"
SELECT_CURSOR = """
SELECT synced_until_ms, items_stored, last_success_at, last_error, last_error_at
FROM hl_kind_cursor WHERE wallet_id = %s AND kind = %s
"""
ADVANCE = """
INSERT INTO hl_kind_cursor AS c (wallet_id, kind, synced_until_ms, items_stored)
VALUES (%(wallet_id)s, %(kind)s, %(until)s, %(stored)s)
ON CONFLICT (wallet_id, kind) DO UPDATE SET
    synced_until_ms = GREATEST(c.synced_until_ms, EXCLUDED.synced_until_ms),
    items_stored = c.items_stored + EXCLUDED.items_stored,
    updated_at = now()
"""
RECORD_SUCCESS = """
INSERT INTO hl_kind_cursor (wallet_id, kind, last_success_at) VALUES (%s, %s, now())
ON CONFLICT (wallet_id, kind) DO UPDATE SET
    last_success_at = now(), last_error = NULL, last_error_at = NULL, updated_at = now()
"""
RECORD_ERROR = """
INSERT INTO hl_kind_cursor (wallet_id, kind, last_error, last_error_at)
VALUES (%s, %s, %s, now())
ON CONFLICT (wallet_id, kind) DO UPDATE SET
    last_error = EXCLUDED.last_error, last_error_at = now(), updated_at = now()
"""
MARK_SCHEDULED = """
INSERT INTO hl_kind_cursor (wallet_id, kind, last_scheduled_at)
SELECT unnest(%s::bigint[]), %s, now()
ON CONFLICT (wallet_id, kind) DO UPDATE SET last_scheduled_at = now()
"""


@dataclass(frozen=True)
class KindCursor:
    synced_until_ms: int | None
    items_stored: int
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


def get_cursor(conn: psycopg.Connection, wallet_id: int, kind: str) -> KindCursor | None:
    row = conn.execute(SELECT_CURSOR, (wallet_id, kind)).fetchone()
    return KindCursor(*row) if row else None


def advance(
    conn: psycopg.Connection, wallet_id: int, kind: str, *, until_ms: int, stored: int
) -> None:
    params = {"wallet_id": wallet_id, "kind": kind, "until": until_ms, "stored": stored}
    conn.execute(ADVANCE, params)


def record_success(conn: psycopg.Connection, wallet_id: int, kind: str) -> None:
    conn.execute(RECORD_SUCCESS, (wallet_id, kind))


def record_error(conn: psycopg.Connection, wallet_id: int, kind: str, error: str) -> None:
    conn.execute(RECORD_ERROR, (wallet_id, kind, error))


def mark_scheduled(conn: psycopg.Connection, wallet_ids: Sequence[int], kind: str) -> None:
    if wallet_ids:
        conn.execute(MARK_SCHEDULED, (list(wallet_ids), kind))


# Every tracked wallet with the time of its kind's last attempt (a success, an error, a
# queued job), the oldest first.
SELECT_KIND_SCHEDULE = """
SELECT w.id, w.address,
       GREATEST(c.last_success_at, c.last_error_at, c.last_scheduled_at) AS last_attempt_at
FROM wallets w
LEFT JOIN hl_kind_cursor c ON c.wallet_id = w.id AND c.kind = %s
WHERE EXISTS (SELECT 1 FROM org_wallets ow WHERE ow.wallet_id = w.id)
ORDER BY last_attempt_at NULLS FIRST, w.id
"""


@dataclass(frozen=True)
class KindScheduleRow:
    wallet_id: int
    address: str
    last_attempt_at: datetime | None


def kind_schedule(conn: psycopg.Connection, kind: str) -> list[KindScheduleRow]:
    return [KindScheduleRow(*row) for row in conn.execute(SELECT_KIND_SCHEDULE, (kind,))]
