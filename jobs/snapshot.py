"""A snapshot of one wallet's account: positions, spot balances and account value.

It asks `clearinghouseState` of the default dex and of each HIP-3 dex the wallet
has traded (from its stored fills), and `spotClearinghouseState`: light requests
(weight 2 each). The answers are validated whole (jobs.hl_parse_account); a
snapshot that fails validation is not stored — the previous one stays the
latest — and the reason is logged and recorded on the wallet's `positions`
cursor. A valid one is stored in one transaction (storage.positions: only when
newer than the stored one) with the cursor's move and a change notification to
every org tracking the wallet, so API caches do not hide it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from jobs.hl_parse_account import InvalidSnapshot, parse_perp_state, parse_spot_state
from storage import changes, kind_cursor, positions
from storage.kind_cursor import POSITIONS
from storage.orgs import Wallet
from storage.positions import Snapshot, Totals

log = logging.getLogger(__name__)


class AccountSource(Protocol):
    async def clearinghouse_state(self, address: str, dex: str = "") -> dict[str, Any]: ...
    async def spot_clearinghouse_state(self, address: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SnapshotReport:
    wallet: Wallet
    dexes: list[str]
    totals: Totals | None  # None: not stored (invalid, or a newer one is stored)
    rejected: str | None = None


async def snapshot_wallet(
    conn: psycopg.Connection,
    source: AccountSource,
    wallet: Wallet,
    *,
    usd_tokens: Sequence[str],
) -> SnapshotReport:
    """Takes and stores one snapshot of the wallet; `conn` must be in autocommit mode."""
    if not conn.autocommit:
        raise ValueError("snapshot_wallet manages its own transactions: pass an autocommit one")
    dexes = ["", *positions.traded_dexes(conn, wallet.id)]
    try:
        answers = [await source.clearinghouse_state(wallet.address, dex) for dex in dexes]
        spot = await source.spot_clearinghouse_state(wallet.address)
    except Exception as exc:
        with conn.transaction():
            kind_cursor.record_error(conn, wallet.id, POSITIONS, f"{type(exc).__name__}: {exc}")
        raise
    try:
        perps = [parse_perp_state(raw, dex) for raw, dex in zip(answers, dexes, strict=True)]
        balances = parse_spot_state(spot)
    except InvalidSnapshot as exc:
        log.warning(
            "kept the previous snapshot of %s: %s",
            wallet.address,
            exc,
            extra={"action": "snapshot_rejected", "wallet": wallet.address, "reason": str(exc)},
        )
        with conn.transaction():
            kind_cursor.record_error(conn, wallet.id, POSITIONS, f"invalid snapshot: {exc}")
        return SnapshotReport(wallet, dexes, None, str(exc))
    snapshot = Snapshot(perps[0].time_ms, perps, balances)
    with conn.transaction():
        collateral = positions.collaterals(conn, dexes)
        unknown = [d for d in dexes if d not in collateral]
        if unknown:
            log.info(
                "dex(es) %s of %s have no known collateral yet: left out of its USD sums",
                unknown,
                wallet.address,
                extra={"action": "snapshot_unpriced_dex", "wallet": wallet.address},
            )
        sums = positions.store(conn, wallet.id, snapshot, collateral, usd_tokens)
        kind_cursor.advance(conn, wallet.id, POSITIONS, until_ms=snapshot.taken_ms, stored=1)
        kind_cursor.record_success(conn, wallet.id, POSITIONS)
        if sums is not None:
            for org_id in positions.tracking_orgs(conn, wallet.id):
                changes.notify_changed(conn, org_id)
    return SnapshotReport(wallet, dexes, sums)
