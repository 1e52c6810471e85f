"""`hl-analytics status`: per-org sync state, each data kind's freshness (fills,
funding, positions, ledger; the ledger types no rule classifies), queue depth and
failed jobs, as tables."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from hl_analytics.admin import transaction
from hl_core.settings import Settings
from storage import jobs as job_store
from storage import ledger, markets, node_position, reports, rollups
from storage.text import printable

FAILED_SHOWN = 10


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _lag(synced_until_ms: int | None, now_s: float) -> str:
    """How far behind the stalest wallet of the org is."""
    if synced_until_ms is None:
        return "never synced"
    seconds = max(0, int(now_s - synced_until_ms / 1000))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _block_time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def status_cmd(settings: Settings, args: argparse.Namespace) -> int:
    now_s = time.time()
    with transaction(settings) as conn:
        orgs = reports.org_sync_status(conn)
        unpriced = rollups.unpriced_by_org(conn)
        unresolved = markets.unresolved_count(conn)
        depth = job_store.queue_depth(conn)
        oldest = job_store.oldest_queued_age_s(conn)
        failed = job_store.failed_jobs(conn, limit=FAILED_SHOWN)
        positions = node_position.all_positions(conn)
        complete = reports.complete_from_counts(conn)
        kinds = reports.kind_freshness(conn)
        unknown = ledger.unknown_types(conn)
    print("Organisations")
    print(
        table(
            (
                "org",
                "id",
                "wallets",
                "synced",
                "failing",
                "truncated",
                "last sync (UTC)",
                "lag",
                "fills",
                "unpriced",
                "re-read left",
                "complete",
                "complete from",
            ),
            [
                (
                    printable(o.name),
                    o.org_id,
                    o.wallets,
                    o.synced,
                    o.failing,
                    o.truncated,
                    o.last_synced_at,
                    _lag(o.oldest_synced_until_ms, now_s) if o.wallets else "-",
                    o.fills_stored,
                    unpriced.get(o.org_id, 0),
                    o.reread_pending,
                    f"{o.complete}/{o.wallets}",
                    o.complete_from,
                )
                for o in orgs
            ],
        )
        if orgs
        else "  none: create one with `hl-analytics orgs create NAME`"
    )
    if unresolved:
        print(
            f"{unresolved} coin(s) with an unknown quote token: their fills are unpriced "
            "until Hyperliquid's metadata resolves them (a worker retries every 10 minutes)"
        )
    for day, count in complete:
        print(
            f"{count} wallet(s) have every fill from {day} on "
            "(archive backfill, or an API pass from their first fill)"
        )
    print()
    print("Data kinds (over every tracked wallet)")
    print(
        table(
            (
                "kind",
                "wallets",
                "synced",
                "failing",
                "newest success (UTC)",
                "oldest success (UTC)",
                "lag",
                "stored",
                "quarantined",
            ),
            [
                (
                    k.kind,
                    k.wallets,
                    k.synced,
                    k.failing,
                    k.newest_success_at,
                    k.oldest_success_at,
                    _lag(k.oldest_synced_until_ms, now_s) if k.wallets else "-",
                    k.stored,
                    k.quarantined,
                )
                for k in kinds
            ],
        )
    )
    print(
        "  funding is asked for about hourly, and only for wallets whose perp positions "
        "may be open: a wallet without any lags on purpose; positions: one snapshot "
        "about every 10 minutes (an invalid one keeps the previous and counts as failing); "
        "ledger: about every 6 hours"
    )
    if unknown:
        print("Ledger update types no rule classifies (stored, counted as neither deposit nor")
        print("withdrawal):")
        print(
            table(
                ("type", "updates", "wallets", "last (UTC)"),
                [(u.type, u.updates, u.wallets, _block_time(u.last_ms)) for u in unknown],
            )
        )
    print()
    print("Fill files (node-ingest, backfill --archive)")
    print(
        table(
            (
                "source",
                "file",
                "offset",
                "last block",
                "block time (UTC)",
                "lag",
                "gaps",
                "lines",
                "fills",
                "moved (UTC)",
            ),
            [
                (
                    pos.source if len(pos.source) <= 40 else "…" + pos.source[-39:],
                    pos.file,
                    pos.byte_offset,
                    pos.last_block,
                    _block_time(pos.last_block_ms),
                    _lag(pos.last_block_ms, now_s) if pos.last_block_ms is not None else "-",
                    pos.gaps,
                    pos.lines,
                    pos.fills_stored,
                    pos.advanced_at,
                )
                for pos in positions
            ],
        )
        if positions
        else "  none"
    )
    print()
    print("Queue" + (f" (oldest queued job waiting {oldest:.0f}s)" if oldest is not None else ""))
    print(
        table(
            ("queue", "actor", "state", "jobs"),
            [(d.queue, d.actor, d.state, d.count) for d in depth],
        )
        if depth
        else "  empty"
    )
    print()
    print("Failed jobs" + (f" (latest {FAILED_SHOWN})" if len(failed) == FAILED_SHOWN else ""))
    print(
        table(
            ("id", "actor", "args", "attempts", "failed at (UTC)", "last error"),
            [
                (f.id, f.actor, f.args, f.attempts, f.failed_at, (f.last_error or "")[:80])
                for f in failed
            ],
        )
        if failed
        else "  none"
    )
    return 0
