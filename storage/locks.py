"""The advisory locks that keep two processes from doing one thing at once.

Each lock family has its own first key, so the families never collide.
"""

from __future__ import annotations

import psycopg

# Two ingests of one wallet never run at once: a session-level advisory lock per
# wallet, held across the ingest's page transactions and released with the
# session if its process dies. The first key names this lock family.
_INGEST_LOCK_CLASS = 0x686C6931
TRY_LOCK_WALLET = "SELECT pg_try_advisory_lock(%s, (%s %% 2147483647)::integer)"
UNLOCK_WALLET = "SELECT pg_advisory_unlock(%s, (%s %% 2147483647)::integer)"


def try_lock_wallet(conn: psycopg.Connection, wallet_id: int) -> bool:
    row = conn.execute(TRY_LOCK_WALLET, (_INGEST_LOCK_CLASS, wallet_id)).fetchone()
    return bool(row and row[0])


def unlock_wallet(conn: psycopg.Connection, wallet_id: int) -> None:
    conn.execute(UNLOCK_WALLET, (_INGEST_LOCK_CLASS, wallet_id))


# Two ingests of one other kind (funding, ledger) of one wallet never run at once
# either; a family per kind, so a wallet's kinds are fetched side by side.
_KIND_LOCK_CLASSES = {"funding": 0x686C6632, "ledger": 0x686C6C33}


def try_lock_kind(conn: psycopg.Connection, kind: str, wallet_id: int) -> bool:
    row = conn.execute(TRY_LOCK_WALLET, (_KIND_LOCK_CLASSES[kind], wallet_id)).fetchone()
    return bool(row and row[0])


def unlock_kind(conn: psycopg.Connection, kind: str, wallet_id: int) -> None:
    conn.execute(UNLOCK_WALLET, (_KIND_LOCK_CLASSES[kind], wallet_id))


# One scheduler tick at a time across processes: the leader of a tick is whoever
# takes this transaction-level lock; the others skip the tick.
_SCHEDULER_LOCK = 0x686C5F7363686564
TRY_SCHEDULER_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"


def try_lead_tick(conn: psycopg.Connection) -> bool:
    """Call inside a transaction; True when this process schedules this tick."""
    row = conn.execute(TRY_SCHEDULER_LOCK, (_SCHEDULER_LOCK,)).fetchone()
    return bool(row and row[0])
