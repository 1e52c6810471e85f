"""The scheduler's plan for the data kinds besides fills (funding payments), in the
one request budget.

Fills come first: jobs.polling keeps their planned rate within half of
HYPERLIQUID_RPS. Funding is settled hourly, so a wallet's funding is asked for
about once an hour (`FUNDING_INTERVAL_S`), and only for wallets that may be owed
some: never synced yet, or with a payment (an open perp position) or a perp fill
since about an hour before their last funding pass (storage.funding). Their
planned rate (wallets / interval) is kept within `FUNDING_SHARE` of
HYPERLIQUID_RPS by stretching the interval, as the fills' plan does; the rest is
left for paging, backfills, retries and syncs. A `userFunding` request weighs
about what a fill request does (20, plus 1 per 20 payments).

The tick's transaction marks the wallets scheduled and queues their ingests
(de-duplicated per wallet while queued), like the fills' plan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from jobs import actors
from jobs.pipeline import Pipeline
from storage import funding
from storage.funding import FUNDING, FundingScheduleRow

log = logging.getLogger(__name__)

FUNDING_INTERVAL_S = 3600.0
FUNDING_SHARE = 0.1
# How far before a wallet's funding cursor a payment or perp fill makes it due again.
REACH_MS = 2 * 3_600_000


@dataclass(frozen=True)
class KindPlan:
    due: list[FundingScheduleRow]
    eligible: int
    stretch: float


def plan_funding(rows: Sequence[FundingScheduleRow], now: datetime, rps: float) -> KindPlan:
    """The wallets whose funding is due now, under the policy of the module docstring."""
    planned = len(rows) / FUNDING_INTERVAL_S
    stretch = max(1.0, planned / (rps * FUNDING_SHARE)) if rows else 1.0
    interval = FUNDING_INTERVAL_S * stretch
    due = [
        r
        for r in rows
        if r.last_attempt_at is None or (now - r.last_attempt_at).total_seconds() >= interval
    ]
    return KindPlan(due, len(rows), stretch)


def schedule_kinds(p: Pipeline, conn: psycopg.Connection, now: datetime) -> KindPlan:
    """Plans and queues the funding ingests due now, in the caller's (tick's) transaction."""
    result = plan_funding(funding.funding_schedule(conn, REACH_MS), now, p.settings.hyperliquid_rps)
    funding.mark_scheduled(conn, [r.wallet_id for r in result.due], FUNDING)
    with p.broker.transaction(conn):
        actors.send_funding_ingests(p, [r.address for r in result.due])
    if result.due:
        log.info(
            "queued funding ingest of %d of %d wallet(s) that may be owed funding "
            "(interval ×%.2f for the budget)",
            len(result.due),
            result.eligible,
            result.stretch,
            extra={"action": "schedule_funding", "queued": len(result.due)},
        )
    return result
