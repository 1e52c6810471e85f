"""Funding payments (`hl_funding`) and their quarantine.

Payments are stored idempotently on their identity (wallet, time, coin): their
hash is always zero. Their ingest's cursor is storage.kind_cursor's `funding`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from storage import markets
from storage.fills import day_of


@dataclass(frozen=True, slots=True)
class Funding:
    """One funding payment of one wallet; `usdc` signed (negative = paid)."""

    time: int
    coin: str
    usdc: Decimal
    szi: Decimal
    funding_rate: Decimal
    n_samples: int | None = None


def identity(payment: Funding) -> tuple[int, str]:
    """Within one wallet: (time, coin)."""
    return payment.time, payment.coin


INSERT_FUNDING = """
INSERT INTO hl_funding (wallet_id, time, coin, usdc, szi, funding_rate, n_samples)
SELECT %(wallet_id)s, t.time, t.coin, t.usdc, t.szi, t.rate, t.n
FROM unnest(%(times)s::bigint[], %(coins)s::text[], %(usdc)s::numeric[], %(szi)s::numeric[],
            %(rates)s::numeric[], %(n)s::integer[]) AS t(time, coin, usdc, szi, rate, n)
ORDER BY t.time, t.coin
ON CONFLICT (wallet_id, time, coin) DO NOTHING
RETURNING time
"""
INSERT_QUARANTINE = "INSERT INTO hl_funding_quarantine (wallet_id, raw, reason) VALUES (%s, %s, %s)"
COUNT_QUARANTINE = "SELECT count(*) FROM hl_funding_quarantine WHERE wallet_id = %s"
SELECT_WALLET_FUNDING = """
SELECT time, coin, usdc, szi, funding_rate, n_samples FROM hl_funding
WHERE wallet_id = %s ORDER BY time, coin
"""


def insert_funding(
    conn: psycopg.Connection, wallet_id: int, batch: Sequence[Funding]
) -> dict[date, int]:
    """Stores the payments not stored yet, in the caller's transaction; returns the new
    ones per UTC day. Their coins are recorded in `hl_markets`, so they can be priced."""
    if not batch:
        return {}
    markets.record(conn, {p.coin for p in batch})
    distinct = {identity(p): p for p in batch}
    rows = list(distinct.values())
    params: dict[str, Any] = {
        "wallet_id": wallet_id,
        "times": [p.time for p in rows],
        "coins": [p.coin for p in rows],
        "usdc": [p.usdc for p in rows],
        "szi": [p.szi for p in rows],
        "rates": [p.funding_rate for p in rows],
        "n": [p.n_samples for p in rows],
    }
    new = Counter(day_of(row[0]) for row in conn.execute(INSERT_FUNDING, params))
    return dict(new)


def quarantine(conn: psycopg.Connection, wallet_id: int, raw: Any, reason: str) -> None:
    """Keeps a funding entry that failed validation, with why, for inspection."""
    conn.execute(INSERT_QUARANTINE, (wallet_id, json.dumps(raw, default=str), reason))


def quarantined(conn: psycopg.Connection, wallet_id: int) -> int:
    row = conn.execute(COUNT_QUARANTINE, (wallet_id,)).fetchone()
    return int(row[0]) if row else 0


def wallet_funding(conn: psycopg.Connection, wallet_id: int) -> list[Funding]:
    return [Funding(*row) for row in conn.execute(SELECT_WALLET_FUNDING, (wallet_id,))]


# Every tracked wallet whose funding may be owed: never synced, or it had a payment (so an
# open perp position) or a perp fill (it may have opened one) since about an hour before
# its funding cursor; both probes use an index on (wallet, time). With the time of the
# last attempt of any kind (a success, an error, a queued ingest).
SELECT_FUNDING_SCHEDULE = """
SELECT w.id, w.address,
       GREATEST(c.last_success_at, c.last_error_at, c.last_scheduled_at) AS last_attempt_at
FROM wallets w
LEFT JOIN hl_kind_cursor c ON c.wallet_id = w.id AND c.kind = 'funding'
WHERE EXISTS (SELECT 1 FROM org_wallets ow WHERE ow.wallet_id = w.id)
  AND (c.synced_until_ms IS NULL
       OR EXISTS (SELECT 1 FROM hl_funding fu
                  WHERE fu.wallet_id = w.id AND fu.time >= c.synced_until_ms - %(reach)s)
       OR EXISTS (SELECT 1 FROM hl_fills_raw f
                  WHERE f.wallet_id = w.id AND f.time >= c.synced_until_ms - %(reach)s
                    AND f.market = 'perp'))
ORDER BY last_attempt_at NULLS FIRST, w.id
"""


@dataclass(frozen=True)
class FundingScheduleRow:
    wallet_id: int
    address: str
    last_attempt_at: datetime | None


def funding_schedule(conn: psycopg.Connection, reach_ms: int) -> list[FundingScheduleRow]:
    """Wallets that may be owed funding (see SELECT_FUNDING_SCHEDULE), oldest attempt first."""
    rows = conn.execute(SELECT_FUNDING_SCHEDULE, {"reach": reach_ms})
    return [FundingScheduleRow(*row) for row in rows]
