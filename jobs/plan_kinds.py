"""The scheduler's plan for the data kinds besides fills (funding payments, account
snapshots, ledger updates), in the one request budget.

Fills come first: jobs.polling keeps their planned rate within half of
HYPERLIQUID_RPS. Funding is settled hourly, so a wallet's funding is asked for
about once an hour (`FUNDING_INTERVAL_S`), and only for wallets that may be owed
some: never synced yet, or with a payment (an open perp position) or a perp fill
since about an hour before their last funding pass (storage.funding). Their
planned rate (wallets / interval) is kept within `FUNDING_SHARE` of
HYPERLIQUID_RPS by stretching the interval, as the fills' plan does; the rest is
left for paging, backfills, retries and syncs. A `userFunding` request weighs
about what a fill request does (20, plus 1 per 20 payments).

Account snapshots (positions, balances, account value) are cheap — a
`clearinghouseState` per dex the wallet trades and a `spotClearinghouseState`,
weight 2 each, a tenth of a limiter slot — so every tracked wallet gets one
every `POSITIONS_INTERVAL_S` (10 minutes), within `POSITIONS_SHARE` of
HYPERLIQUID_RPS (counted as `SNAPSHOT_SLOTS` slots a snapshot), stretched the
same way. Ledger updates (deposits, withdrawals, transfers) change rarely: every
tracked wallet's are asked for about every 6 hours (`LEDGER_INTERVAL_S`) within
`LEDGER_SHARE` of the budget. Together the kinds plan at most 0.5 + 0.1 + 0.2 +
0.05 of the budget.

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
from storage import funding, kind_cursor, orgs
from storage.funding import FundingScheduleRow
from storage.kind_cursor import FUNDING, LEDGER, POSITIONS, KindScheduleRow

log = logging.getLogger(__name__)

FUNDING_INTERVAL_S = 3600.0
FUNDING_SHARE = 0.1
# How far before a wallet's funding cursor a payment or perp fill makes it due again.
REACH_MS = 2 * 3_600_000
POSITIONS_INTERVAL_S = 600.0
POSITIONS_SHARE = 0.2
SNAPSHOT_SLOTS = 0.2  # the default dex and spot: two requests of weight 2
LEDGER_INTERVAL_S = 6 * 3600.0
LEDGER_SHARE = 0.05


Row = FundingScheduleRow | KindScheduleRow


@dataclass(frozen=True)
class KindPlan:
    due: list[Row]
    eligible: int
    stretch: float


def _plan(
    rows: Sequence[Row], now: datetime, interval_s: float, slots: float, budget: float
) -> KindPlan:
    planned = len(rows) * slots / interval_s
    stretch = max(1.0, planned / budget) if rows else 1.0
    interval = interval_s * stretch
    due = [
        r
        for r in rows
        if r.last_attempt_at is None or (now - r.last_attempt_at).total_seconds() >= interval
    ]
    return KindPlan(due, len(rows), stretch)


def plan_funding(rows: Sequence[Row], now: datetime, rps: float) -> KindPlan:
    """The wallets whose funding is due now, under the policy of the module docstring."""
    return _plan(rows, now, FUNDING_INTERVAL_S, 1.0, rps * FUNDING_SHARE)


def plan_ledger(rows: Sequence[Row], now: datetime, rps: float) -> KindPlan:
    """The wallets whose ledger updates are due now."""
    return _plan(rows, now, LEDGER_INTERVAL_S, 1.0, rps * LEDGER_SHARE)


def plan_positions(rows: Sequence[Row], now: datetime, rps: float) -> KindPlan:
    """The wallets whose account snapshot is due now."""
    return _plan(rows, now, POSITIONS_INTERVAL_S, SNAPSHOT_SLOTS, rps * POSITIONS_SHARE)


def schedule_kinds(p: Pipeline, conn: psycopg.Connection, now: datetime) -> KindPlan:
    """Plans and queues the funding and ledger ingests and snapshots due now, in the
    caller's (tick's) transaction; returns the funding plan."""
    rps = p.settings.hyperliquid_rps
    result = plan_funding(funding.funding_schedule(conn, REACH_MS), now, rps)
    snapshots = plan_positions(kind_cursor.kind_schedule(conn, POSITIONS), now, rps)
    kind_cursor.mark_scheduled(conn, [r.wallet_id for r in result.due], FUNDING)
    ledgers = plan_ledger(kind_cursor.kind_schedule(conn, LEDGER), now, rps)
    kind_cursor.mark_scheduled(conn, [r.wallet_id for r in snapshots.due], POSITIONS)
    kind_cursor.mark_scheduled(conn, [r.wallet_id for r in ledgers.due], LEDGER)
    # Each job is for the org the fair queue files its wallet under, as fills' are.
    due = [*result.due, *snapshots.due, *ledgers.due]
    owner = orgs.fair_orgs(conn, [r.wallet_id for r in due])
    keys = {r.address: str(owner[r.wallet_id]) for r in due if r.wallet_id in owner}
    with p.broker.transaction(conn):
        actors.send_funding_ingests(p, [r.address for r in result.due], fair_keys=keys)
        actors.send_snapshots(p, [r.address for r in snapshots.due], fair_keys=keys)
        actors.send_ledger_ingests(p, [r.address for r in ledgers.due], fair_keys=keys)
    if ledgers.due:
        log.info(
            "queued ledger ingest of %d of %d wallet(s) (interval ×%.2f for the budget)",
            len(ledgers.due),
            ledgers.eligible,
            ledgers.stretch,
            extra={"action": "schedule_ledger", "queued": len(ledgers.due)},
        )
    if snapshots.due:
        log.info(
            "queued a snapshot of %d of %d wallet(s) (interval ×%.2f for the budget)",
            len(snapshots.due),
            snapshots.eligible,
            snapshots.stretch,
            extra={"action": "schedule_snapshots", "queued": len(snapshots.due)},
        )
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
