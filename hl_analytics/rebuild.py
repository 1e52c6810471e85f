"""`hl-analytics rebuild`: recompute the rollups from the raw fills.

Needed when the pricing rules' inputs change (HYPERLIQUID_USD_TOKENS, a coin's
quote token) or to prove the derived tables derivable. Day by day, oldest first,
each day in one transaction: the wallet-days of the wallets in scope (every
wallet, or the org's), then the org-days of every org tracking one of them
(an org's day is a sum over its wallets, so a shared wallet's other orgs change
too), with a notification so running APIs drop their cached answers; then the
running totals (storage/read_models.py) from the first day on, once. Every
statement recomputes rows from their sources, so running it twice, or beside
the workers, changes nothing more.

`--org` works on the org's wallets `rollups.PENDING_CHUNK` at a time, each chunk in
its own transaction, as the workers' rollups do: a rebuild locks each wallet it
recomputes (storage.rollups.lock_wallet_days), and one transaction locking the
tens of thousands of wallets of a large org runs out of PostgreSQL's lock table
("out of shared memory"). The whole database's rebuild takes one table lock instead.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

from hl_analytics.admin import transaction
from hl_core.errors import HLAnalyticsError
from hl_core.settings import Settings
from storage import day_totals, orgs, rollups

PROGRESS_EVERY_S = 2.0


class BadRebuildRange(HLAnalyticsError):
    """--from must not be after --to."""


def rebuild(
    settings: Settings,
    org_id: str | None,
    first: date | None,
    last: date | None,
) -> tuple[int, int]:
    """Rebuilds the days in scope; returns (days, org-days written)."""
    if first and last and first > last:
        raise BadRebuildRange(f"--from {first} is after --to {last}")
    with transaction(settings) as conn:
        wallet_ids = (
            None
            if org_id is None
            else [w.id for w in orgs.tracked_wallets(conn, orgs.get_org(conn, org_id).id)]
        )
        span = rollups.day_span(conn, wallet_ids) if wallet_ids != [] else None
        org_ids = (
            [o.id for o in orgs.list_orgs(conn)]
            if wallet_ids is None
            else rollups.tracking_orgs(conn, wallet_ids)
        )
    if span is None:
        print("nothing to rebuild: no fills in scope")
        return 0, 0
    start, end = max(span[0], first or span[0]), min(span[1], last or span[1])
    total = max(0, (end - start).days + 1)
    print(f"rebuilding {total} day(s), {start} to {end}, for {len(org_ids)} organisation(s)")
    shown = time.monotonic()
    written = 0
    for n in range(total):
        day = start + timedelta(days=n)
        if wallet_ids is None:
            with transaction(settings) as conn:
                rollups.rebuild_all_wallet_days(
                    conn, day, usd_tokens=settings.hyperliquid_usd_tokens, running_totals=False
                )
        for chunk in _chunks(wallet_ids or []):
            with transaction(settings) as conn:
                rollups.rebuild_wallet_days(
                    conn,
                    chunk,
                    day,
                    usd_tokens=settings.hyperliquid_usd_tokens,
                    running_totals=False,
                )
        with transaction(settings) as conn:
            for org in org_ids:
                written += rollups.rebuild_org_day(conn, org, day)
        if time.monotonic() - shown >= PROGRESS_EVERY_S or n == total - 1:
            shown = time.monotonic()
            print(f"  {n + 1}/{total} days ({day})", flush=True)
    # The running totals from the first rebuilt day on, once (per day it would rewrite
    # every later day again), under the same locks as a rollup's.
    if wallet_ids is None:
        with transaction(settings) as conn:
            rollups.lock_all_wallet_days(conn)
            day_totals.refresh_read_models(conn, None, start)
    for chunk in _chunks(wallet_ids or []):
        with transaction(settings) as conn:
            rollups.lock_wallet_days(conn, chunk)
            day_totals.refresh_read_models(conn, chunk, start)
    # The day totals of the wallets that left stale, without waiting for the scheduler.
    with transaction(settings) as conn:
        day_totals.freshen_all(conn)
    print(f"rebuilt {total} day(s); {written} org-day(s) with activity")
    return total, written


def _chunks(wallet_ids: list[int]) -> list[list[int]]:
    size = rollups.PENDING_CHUNK
    return [wallet_ids[n : n + size] for n in range(0, len(wallet_ids), size)]


def rebuild_cmd(settings: Settings, args: argparse.Namespace) -> int:
    rebuild(settings, args.org_id, args.first, args.last)
    return 0
