"""How often the scheduler re-ingests each wallet: the request budget goes to fresh wallets.

Hyperliquid allows one IP about 1,200 weight a minute, and `userFillsByTime`
weighs at least 20: about one request a second in all (HYPERLIQUID_RPS, shared
by every worker). Each ingest costs at least one request, so the policy spends
that budget where it buys freshness — on wallets that traded recently:

| last fill of the wallet      | re-ingested every |
|------------------------------|-------------------|
| never ingested yet           | at once           |
| within the last hour         | 1 minute          |
| within the last day          | 10 minutes        |
| within the last week         | 1 hour            |
| longer ago, or never traded  | 6 hours           |
| history re-read pending      | 1 minute, until done (an upgrade's one-off) |

The planned rate (the sum of 1 / interval over all tracked wallets) is kept at
or below `BUDGET_SHARE` (half) of HYPERLIQUID_RPS; the other half is left for
paging through busy wallets, first-time backfills, retries and manual syncs.
When the plan exceeds it, every interval is stretched by the same factor. For
example, at 1 request/s: 10,000 dormant wallets plan 0.46 requests/s and fit;
100 wallets that traded in the last hour plan 1.67/s, so each is re-ingested
every 3 min 20 s instead of every minute.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from storage.cursor import ScheduleRow

R = TypeVar("R")

MINUTE_S = 60.0
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# (age of the last fill below which the tier applies, re-ingest interval in seconds)
TIERS: tuple[tuple[int, float], ...] = (
    (HOUR_MS, 1 * MINUTE_S),
    (DAY_MS, 10 * MINUTE_S),
    (7 * DAY_MS, 60 * MINUTE_S),
)
DORMANT_INTERVAL_S = 6 * 60 * MINUTE_S
BUDGET_SHARE = 0.5


def interval_s(last_fill_ms: int | None, now_ms: int) -> float:
    """The re-ingest interval of a wallet, before any budget stretch."""
    if last_fill_ms is not None:
        age = now_ms - last_fill_ms
        for below_ms, interval in TIERS:
            if age < below_ms:
                return interval
    return DORMANT_INTERVAL_S


@dataclass(frozen=True)
class Plan:
    due: list[ScheduleRow]
    stretch: float
    planned_rps: float


def plan(rows: Sequence[ScheduleRow], now: datetime, rps: float) -> Plan:
    """The wallets due for ingest now, under the policy of the module docstring."""
    now_ms = int(now.timestamp() * 1000)
    intervals = [MINUTE_S if r.reread_pending else interval_s(r.last_fill_ms, now_ms) for r in rows]
    planned = sum(1.0 / i for i in intervals)
    stretch = max(1.0, planned / (rps * BUDGET_SHARE)) if planned else 1.0
    due = [
        row
        for row, interval in zip(rows, intervals, strict=True)
        if row.last_attempt_at is None
        or (now - row.last_attempt_at).total_seconds() >= interval * stretch
    ]
    return Plan(due, stretch, planned)


def interleave(rows: Sequence[R], key: Callable[[R], str]) -> list[R]:
    """The rows round robin by key: the first of each key, then the second of each, …"""
    groups: dict[str, list[R]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [
        row for turn in itertools.zip_longest(*groups.values()) for row in turn if row is not None
    ]


def not_covered_by_node(rows: Sequence[ScheduleRow]) -> list[ScheduleRow]:
    """The wallets a live node source does not cover: those without a first API pass
    over their reachable history, or with a history re-read pending."""
    return [r for r in rows if not r.api_synced or r.reread_pending]
