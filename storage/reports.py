"""Read-only reports for the operator (`hl-analytics status`): the sync state per org.

They read the ingest cursors (`storage/cursor.py`) and the org-wallet links; the
queue's figures are in `storage/jobs.py`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

ORG_SYNC_STATUS = """
SELECT o.id, o.name,
       count(ow.wallet_id)::integer AS wallets,
       count(c.last_success_at)::integer AS synced,
       count(*) FILTER (WHERE c.last_error_at > coalesce(c.last_success_at, '-infinity'))::integer,
       count(*) FILTER (WHERE c.history_truncated)::integer,
       max(c.last_success_at),
       min(c.synced_until_ms) FILTER (WHERE ow.wallet_id IS NOT NULL),
       coalesce(sum(c.fills_stored), 0)::bigint,
       count(*) FILTER (WHERE c.reread_pending)::integer,
       count(c.complete_from)::integer,
       CASE WHEN count(c.complete_from) = count(ow.wallet_id) THEN max(c.complete_from) END
FROM orgs o
LEFT JOIN org_wallets ow ON ow.org_id = o.id
LEFT JOIN hl_ingest_cursor c ON c.wallet_id = ow.wallet_id
GROUP BY o.id, o.name
ORDER BY o.name, o.id
"""


@dataclass(frozen=True)
class OrgSyncStatus:
    """Sync state of one org's wallets, for `hl-analytics status`."""

    org_id: uuid.UUID
    name: str
    wallets: int
    synced: int
    failing: int
    truncated: int
    last_synced_at: datetime | None
    oldest_synced_until_ms: int | None
    fills_stored: int
    # Wallets still to re-read their history once after the short-pages upgrade.
    reread_pending: int
    # Wallets whose history is known complete from some day (cursor.complete_from),
    # and the day from which all the org's wallets are (None unless every one is).
    complete: int = 0
    complete_from: date | None = None


def org_sync_status(conn: psycopg.Connection) -> list[OrgSyncStatus]:
    return [OrgSyncStatus(*row) for row in conn.execute(ORG_SYNC_STATUS)]


COMPLETE_FROM = """
SELECT complete_from, count(*)::integer FROM hl_ingest_cursor
WHERE complete_from IS NOT NULL GROUP BY 1 ORDER BY 1
"""


def complete_from_counts(conn: psycopg.Connection) -> list[tuple[date, int]]:
    """How many wallets have every fill from each day on (an archive import joined
    their API history, jobs.backfill, or an API pass read it from its start)."""
    return [(row[0], int(row[1])) for row in conn.execute(COMPLETE_FROM)]


# Freshness of each data kind over every tracked wallet: fills (hl_ingest_cursor) and the
# kinds of hl_kind_cursor (funding; positions: snapshots taken, an invalid one is an
# error, not quarantined; ledger: its stored count is of deposits and withdrawals),
# with what each stored and rejected.
KIND_FRESHNESS = """
WITH tracked AS (SELECT DISTINCT wallet_id FROM org_wallets)
SELECT 'fills', count(*)::integer, count(c.last_success_at)::integer,
       count(*) FILTER (WHERE c.last_error_at > coalesce(c.last_success_at, '-infinity'))::integer,
       max(c.last_success_at), min(c.last_success_at), min(c.synced_until_ms),
       coalesce(sum(c.fills_stored), 0)::bigint,
       (SELECT count(*) FROM hl_fills_quarantine q JOIN tracked USING (wallet_id))::bigint
FROM tracked t LEFT JOIN hl_ingest_cursor c ON c.wallet_id = t.wallet_id
UNION ALL
SELECT 'funding', count(*)::integer, count(c.last_success_at)::integer,
       count(*) FILTER (WHERE c.last_error_at > coalesce(c.last_success_at, '-infinity'))::integer,
       max(c.last_success_at), min(c.last_success_at), min(c.synced_until_ms),
       coalesce(sum(c.items_stored), 0)::bigint,
       (SELECT count(*) FROM hl_funding_quarantine q JOIN tracked USING (wallet_id))::bigint
FROM tracked t LEFT JOIN hl_kind_cursor c ON c.wallet_id = t.wallet_id AND c.kind = 'funding'
UNION ALL
SELECT 'positions', count(*)::integer, count(c.last_success_at)::integer,
       count(*) FILTER (WHERE c.last_error_at > coalesce(c.last_success_at, '-infinity'))::integer,
       max(c.last_success_at), min(c.last_success_at), min(c.synced_until_ms),
       coalesce(sum(c.items_stored), 0)::bigint, NULL
FROM tracked t LEFT JOIN hl_kind_cursor c ON c.wallet_id = t.wallet_id AND c.kind = 'positions'
UNION ALL
SELECT 'ledger', count(*)::integer, count(c.last_success_at)::integer,
       count(*) FILTER (WHERE c.last_error_at > coalesce(c.last_success_at, '-infinity'))::integer,
       max(c.last_success_at), min(c.last_success_at), min(c.synced_until_ms),
       coalesce(sum(c.items_stored), 0)::bigint,
       (SELECT count(*) FROM hl_ledger_quarantine q JOIN tracked USING (wallet_id))::bigint
FROM tracked t LEFT JOIN hl_kind_cursor c ON c.wallet_id = t.wallet_id AND c.kind = 'ledger'
"""


@dataclass(frozen=True)
class KindFreshness:
    """How up to date one data kind is over the tracked wallets."""

    kind: str
    wallets: int
    synced: int
    failing: int
    newest_success_at: datetime | None
    oldest_success_at: datetime | None
    oldest_synced_until_ms: int | None
    stored: int
    quarantined: int | None


def kind_freshness(conn: psycopg.Connection) -> list[KindFreshness]:
    return [KindFreshness(*row) for row in conn.execute(KIND_FRESHNESS)]
