"""Raw fills (`hl_fills_raw`), their monthly partitions and the quarantine.

Fills are appended idempotently: a batch is copied into a temporary table with
`COPY`, then moved with one `INSERT … ON CONFLICT DO NOTHING` keyed on
(wallet, time, tid, oid, coin). Re-inserting a fill, or a batch holding the same
fill twice, stores it once; a self-trade (same tid, two oids) keeps both sides,
and so do two dust conversions (tid 0, oid 0) of different coins or times.

Market kind and dex are generated from the coin by the table itself (migration
0010); `extra` holds the keys of the raw fill the parser does not know, as JSON.

The fast path: time is part of a fill's identity, so when the wallet has no
stored fill within the batch's time range (an ingest's new pages), none of the
batch can conflict, and it is copied straight into the table — half the work.
If a concurrent writer stored one meanwhile, the savepoint around that COPY
undoes it and the batch takes the general path.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any

import psycopg

from storage import markets

EPOCH = date(1970, 1, 1)
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Fill:
    """One Hyperliquid fill of one wallet, typed; field order is the COPY order."""

    time: int
    tid: int
    oid: int
    coin: str
    side: str
    px: Decimal
    sz: Decimal
    dir: str
    start_position: Decimal
    closed_pnl: Decimal
    fee: Decimal
    fee_token: str
    builder_fee: Decimal | None
    hash: str
    crossed: bool
    cloid: str | None = None
    twap_id: int | None = None
    liquidated_user: str | None = None
    liquidation_mark_px: Decimal | None = None
    liquidation_method: str | None = None
    # The raw fill's keys the parser does not know, as a JSON object text (None: none).
    extra: str | None = None

    @property
    def day(self) -> date:
        return day_of(self.time)


FILL_COLUMNS = tuple(f.name for f in fields(Fill))
# A fill's values in COPY order. Not dataclasses.astuple, which deep-copies every
# field and made building the rows cost several times the COPY itself.
fill_row = attrgetter(*FILL_COLUMNS)
_COLUMN_LIST = ", ".join(FILL_COLUMNS)


def identity(fill: Fill) -> tuple[int, int, int, str]:
    """What tells one stored fill of a wallet from another (the table's primary key)."""
    return (fill.tid, fill.oid, fill.time, fill.coin)


def day_of(time_ms: int) -> date:
    """The UTC day of an epoch-millisecond timestamp."""
    return EPOCH + timedelta(days=time_ms // DAY_MS)


def day_bounds_ms(day: date) -> tuple[int, int]:
    start = (day - EPOCH).days * DAY_MS
    return start, start + DAY_MS


CREATE_INCOMING = """
CREATE TEMP TABLE IF NOT EXISTS hl_fills_incoming
    (LIKE hl_fills_raw INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""
TRUNCATE_INCOMING = "TRUNCATE hl_fills_incoming"
COPY_INCOMING = f"COPY hl_fills_incoming (wallet_id, {_COLUMN_LIST}) FROM STDIN"
# Returns, per UTC day, how many of the batch's fills were new.
MOVE_INCOMING = f"""
WITH inserted AS (
    INSERT INTO hl_fills_raw (wallet_id, {_COLUMN_LIST})
    SELECT wallet_id, {_COLUMN_LIST} FROM hl_fills_incoming
    ON CONFLICT ON CONSTRAINT hl_fills_raw_identity DO NOTHING
    RETURNING time
)
SELECT time / {DAY_MS} AS day_number, count(*) FROM inserted GROUP BY 1 ORDER BY 1
"""
# Whether any stored fill of the wallet could share an identity with a batch in [lo, hi].
ANY_FILL_BETWEEN = """
SELECT EXISTS (SELECT 1 FROM hl_fills_raw WHERE wallet_id = %s AND time BETWEEN %s AND %s)
"""
# The same, for many wallets at once: each with its own range (ids, lows, highs).
ANY_FILL_IN_RANGES = """
SELECT EXISTS (
    SELECT 1 FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS r(wallet_id, lo, hi)
    WHERE EXISTS (SELECT 1 FROM hl_fills_raw f
                  WHERE f.wallet_id = r.wallet_id AND f.time BETWEEN r.lo AND r.hi)
)
"""
COPY_RAW = f"COPY hl_fills_raw (wallet_id, {_COLUMN_LIST}) FROM STDIN"
ENSURE_PARTITIONS = "SELECT hl_ensure_fill_partitions(%s)"
CREATE_PARTITION = "SELECT hl_create_fill_partition(%s)"
SELECT_PARTITION_OF = """
SELECT tableoid::regclass::text FROM hl_fills_raw WHERE wallet_id = %s AND tid = %s AND oid = %s
"""
COUNT_WALLET_FILLS = "SELECT count(*) FROM hl_fills_raw WHERE wallet_id = %s"
INSERT_QUARANTINE = "INSERT INTO hl_fills_quarantine (wallet_id, raw, reason) VALUES (%s, %s, %s)"
COUNT_QUARANTINE = "SELECT count(*) FROM hl_fills_quarantine WHERE wallet_id = %s"
INSERT_QUARANTINE_AT = """
INSERT INTO hl_fills_quarantine (wallet_id, raw, reason, source_file, source_offset)
VALUES (%s, %s, %s, %s, %s)
"""


@dataclass(frozen=True)
class InsertResult:
    """What an append stored: new fills per UTC day (days without new fills absent)."""

    new_per_day: dict[date, int]

    @property
    def inserted(self) -> int:
        return sum(self.new_per_day.values())


def insert_fills(conn: psycopg.Connection, wallet_id: int, batch: Sequence[Fill]) -> InsertResult:
    """Appends the batch idempotently, in the caller's transaction, and records its coins
    in `hl_markets` (storage.markets), so every stored fill has a market to be priced by."""
    if not batch:
        return InsertResult({})
    markets.record(conn, {f.coin for f in batch})
    by_identity: dict[tuple[int, int, int, str], Fill] = {}
    for fill in batch:
        by_identity.setdefault(identity(fill), fill)
    distinct = list(by_identity.values())
    lo, hi = min(f.time for f in distinct), max(f.time for f in distinct)
    stored = conn.execute(ANY_FILL_BETWEEN, (wallet_id, lo, hi)).fetchone()
    if stored is not None and not stored[0]:
        try:
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_RAW) as copy:
                for fill in distinct:
                    copy.write_row((wallet_id, *fill_row(fill)))
        except psycopg.errors.UniqueViolation:
            pass  # stored meanwhile by another transaction: the general path below
        else:
            per_day: dict[date, int] = {}
            for fill in distinct:
                per_day[fill.day] = per_day.get(fill.day, 0) + 1
            return InsertResult(dict(sorted(per_day.items())))
    with conn.cursor() as cur:
        cur.execute(CREATE_INCOMING)
        cur.execute(TRUNCATE_INCOMING)
        with cur.copy(COPY_INCOMING) as copy:
            for fill in batch:
                copy.write_row((wallet_id, *fill_row(fill)))
        rows = cur.execute(MOVE_INCOMING).fetchall()
    return InsertResult({EPOCH + timedelta(days=int(day)): int(count) for day, count in rows})


# The many-wallet variant (a node's batch): rows in identity order, so two writers of
# overlapping fills take their key locks in the same order.
MOVE_INCOMING_MANY = f"""
WITH inserted AS (
    INSERT INTO hl_fills_raw (wallet_id, {_COLUMN_LIST})
    SELECT wallet_id, {_COLUMN_LIST} FROM hl_fills_incoming
    ORDER BY wallet_id, time, tid, oid, coin
    ON CONFLICT ON CONSTRAINT hl_fills_raw_identity DO NOTHING
    RETURNING wallet_id, time
)
SELECT wallet_id, time / {DAY_MS} AS day_number, count(*), max(time)
FROM inserted GROUP BY 1, 2 ORDER BY 1, 2
"""


@dataclass(frozen=True)
class WalletInsert:
    """What a many-wallet append stored for one wallet."""

    new_per_day: dict[date, int]
    last_fill_ms: int

    @property
    def inserted(self) -> int:
        return sum(self.new_per_day.values())


def insert_many(
    conn: psycopg.Connection, batches: dict[int, list[Fill]]
) -> dict[int, WalletInsert]:
    """Appends the fills of many wallets idempotently, in the caller's transaction (what
    `insert_fills` does per wallet); returns, per wallet with new fills, the new fills
    per UTC day and its latest new fill.

    The fast path, as `insert_fills`'s: when no wallet has a stored fill within its
    batch's time range (one query for all), none can conflict and the fills are
    copied straight into the table, in key order (the general path's lock order). A
    conflict undoes that COPY (savepoint) and the general path runs: one COPY into a
    temporary table and one INSERT … ON CONFLICT. A conflict is a fill a concurrent
    writer stored meanwhile, or one written twice in the batch (rare: the node wrote a
    block again), which the general path stores once."""
    ordered = _in_key_order(batches)
    if not ordered:
        return {}
    markets.record(conn, {f.coin for fills in ordered.values() for f in fills})
    ids = list(ordered)
    lows = [fills[0].time for fills in ordered.values()]
    highs = [fills[-1].time for fills in ordered.values()]
    overlap = conn.execute(ANY_FILL_IN_RANGES, (ids, lows, highs)).fetchone()
    if overlap is not None and not overlap[0]:
        try:
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_RAW) as copy:
                for wallet_id, wallet_fills in ordered.items():
                    for fill in wallet_fills:
                        copy.write_row((wallet_id, *fill_row(fill)))
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
            pass  # see above: the general path
        else:
            return {w: _all_new(fills) for w, fills in ordered.items()}
    with conn.cursor() as cur:
        cur.execute(CREATE_INCOMING)
        cur.execute(TRUNCATE_INCOMING)
        with cur.copy(COPY_INCOMING) as copy:
            for wallet_id, wallet_fills in ordered.items():
                for fill in wallet_fills:
                    copy.write_row((wallet_id, *fill_row(fill)))
        rows = cur.execute(MOVE_INCOMING_MANY).fetchall()
    out: dict[int, WalletInsert] = {}
    for wallet_id, day, count, last in rows:
        day_of_row = EPOCH + timedelta(days=int(day))
        previous = out.get(int(wallet_id))
        per_day = previous.new_per_day if previous else {}
        per_day[day_of_row] = int(count)
        latest = max(int(last), previous.last_fill_ms if previous else 0)
        out[int(wallet_id)] = WalletInsert(per_day, latest)
    return out


# The table's key order within a wallet: the general path's INSERT order, and the
# fast path's COPY order, so two writers of overlapping fills lock keys alike.
_key_order = attrgetter("time", "tid", "oid", "coin")


def _in_key_order(batches: dict[int, list[Fill]]) -> dict[int, list[Fill]]:
    """Each wallet's fills sorted as the table's key, wallets by id; empty ones left out."""
    return {w: sorted(batches[w], key=_key_order) for w in sorted(batches) if batches[w]}


def _all_new(fills: list[Fill]) -> WalletInsert:
    """What storing every one of a wallet's fills (in time order) adds."""
    per_day = Counter(f.time // DAY_MS for f in fills)
    return WalletInsert(
        {EPOCH + timedelta(days=day): count for day, count in per_day.items()}, fills[-1].time
    )


def quarantine(conn: psycopg.Connection, wallet_id: int, raw: Any, reason: str) -> None:
    """Keeps a fill that failed validation, with why, for inspection."""
    conn.execute(INSERT_QUARANTINE, (wallet_id, json.dumps(raw, default=str), reason))


def quarantine_at(
    conn: psycopg.Connection,
    wallet_id: int | None,
    raw: Any,
    reason: str,
    *,
    file: str,
    offset: int,
) -> None:
    """Keeps a line or fill of a file that failed validation, with where it was read;
    `wallet_id` None: it belongs to no wallet (a malformed line)."""
    text = json.dumps(raw, default=str).replace("\\u0000", "")  # jsonb refuses NUL
    conn.execute(INSERT_QUARANTINE_AT, (wallet_id, text, reason[:2000], file, offset))


def quarantined_count(conn: psycopg.Connection, wallet_id: int) -> int:
    row = conn.execute(COUNT_QUARANTINE, (wallet_id,)).fetchone()
    return int(row[0]) if row else 0


def ensure_partitions(conn: psycopg.Connection, months_ahead: int = 3) -> int:
    """Creates missing monthly partitions; returns how many it created."""
    row = conn.execute(ENSURE_PARTITIONS, (months_ahead,)).fetchone()
    return int(row[0]) if row else 0


def create_partition(conn: psycopg.Connection, month: date) -> bool:
    row = conn.execute(CREATE_PARTITION, (month,)).fetchone()
    return bool(row and row[0])


def partition_of(conn: psycopg.Connection, wallet_id: int, tid: int, oid: int) -> str | None:
    row = conn.execute(SELECT_PARTITION_OF, (wallet_id, tid, oid)).fetchone()
    return str(row[0]) if row else None


def count_fills(conn: psycopg.Connection, wallet_id: int) -> int:
    row = conn.execute(COUNT_WALLET_FILLS, (wallet_id,)).fetchone()
    return int(row[0]) if row else 0
