"""Account snapshots: the latest positions and balances of a wallet (`wallet_positions`,
`wallet_balances`) and each UTC day's last totals (`wallet_account_days`).

A snapshot is written whole in one transaction, and only when it is newer than the
one stored (`taken_ms`): two snapshots of a wallet committing out of order never
leave the older one as the latest. Its day is the UTC day of `taken_ms`; a later
snapshot of the same day replaces that day's row, so each day keeps its last.

USD rules (README, domain rules): a perp dex counts when its collateral is a USD
stablecoin (the default dex's is USDC; a HIP-3 dex's is its perps' quote token in
`hl_markets`), a spot balance when its coin is one. Account value = Σ those dexes'
`accountValue` + Σ those spot balances' `total`; unrealized PnL = Σ those dexes'
positions' `unrealizedPnl`. Everything else is stored with `usd_priced` false and
left out of the sums: no guessed prices.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg

from storage.fills import day_of

DEFAULT_DEX_COLLATERAL = "USDC"


@dataclass(frozen=True, slots=True)
class Position:
    coin: str
    dex: str  # "" for the default dex
    size: Decimal  # signed: negative = short
    entry_px: Decimal | None
    position_value: Decimal
    unrealized_pnl: Decimal
    leverage_type: str
    leverage: Decimal
    liquidation_px: Decimal | None
    margin_used: Decimal
    funding_since_open: Decimal  # received since the position opened (negative = paid)


@dataclass(frozen=True, slots=True)
class PerpDex:
    dex: str
    time_ms: int
    account_value: Decimal
    withdrawable: Decimal
    positions: list[Position]


@dataclass(frozen=True, slots=True)
class Balance:
    coin: str
    total: Decimal
    hold: Decimal
    entry_ntl: Decimal | None


@dataclass(frozen=True)
class Snapshot:
    """One wallet's account state, as of `taken_ms` (the default dex's `time`)."""

    taken_ms: int
    perps: list[PerpDex]
    balances: list[Balance]

    @property
    def day(self) -> date:
        return day_of(self.taken_ms)


@dataclass(frozen=True)
class Totals:
    account_value_usd: Decimal
    unrealized_pnl_usd: Decimal
    open_positions: int
    usd_dexes: frozenset[str]


def totals(snapshot: Snapshot, collateral: Mapping[str, str], usd_tokens: Sequence[str]) -> Totals:
    """The snapshot's USD sums by the module's rules; `collateral` maps a dex to its token."""
    usd = set(usd_tokens)
    dexes = frozenset(p.dex for p in snapshot.perps if collateral.get(p.dex) in usd)
    value = sum((p.account_value for p in snapshot.perps if p.dex in dexes), Decimal(0))
    value += sum((b.total for b in snapshot.balances if b.coin in usd), Decimal(0))
    unrealized = sum(
        (pos.unrealized_pnl for p in snapshot.perps if p.dex in dexes for pos in p.positions),
        Decimal(0),
    )
    count = sum(len(p.positions) for p in snapshot.perps)
    return Totals(value, unrealized, count, dexes)


# The dexes a wallet trades besides the default one: what its snapshot asks for.
SELECT_TRADED_DEXES = """
SELECT DISTINCT dex FROM hl_fills_raw WHERE wallet_id = %s AND dex IS NOT NULL ORDER BY dex
"""
# A HIP-3 dex's collateral: the quote token of its perps, once metadata resolved them.
SELECT_COLLATERAL = """
SELECT dex, min(quote_token) FROM hl_markets
WHERE dex = ANY(%s) AND quote_token IS NOT NULL GROUP BY dex
"""
_LOCK_CLASS = 0x686C7073
LOCK_WALLET = "SELECT pg_advisory_xact_lock(%s, (%s %% 2147483647)::integer)"
SELECT_LATEST_MS = "SELECT max(taken_ms) FROM wallet_account_days WHERE wallet_id = %s"
DELETE_POSITIONS = "DELETE FROM wallet_positions WHERE wallet_id = %s"
DELETE_BALANCES = "DELETE FROM wallet_balances WHERE wallet_id = %s"
INSERT_POSITION = """
INSERT INTO wallet_positions (wallet_id, coin, dex, size, entry_px, position_value,
    unrealized_pnl, leverage_type, leverage, liquidation_px, margin_used, funding_since_open,
    usd_priced)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
INSERT_BALANCE = """
INSERT INTO wallet_balances (wallet_id, coin, total, hold, entry_ntl, usd_priced)
VALUES (%s, %s, %s, %s, %s, %s)
"""
UPSERT_DAY = """
INSERT INTO wallet_account_days (wallet_id, day, taken_ms, account_value_usd,
                                 unrealized_pnl_usd, open_positions)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (wallet_id, day) DO UPDATE SET
    taken_ms = EXCLUDED.taken_ms,
    account_value_usd = EXCLUDED.account_value_usd,
    unrealized_pnl_usd = EXCLUDED.unrealized_pnl_usd,
    open_positions = EXCLUDED.open_positions
"""
SELECT_TRACKING_ORGS = "SELECT DISTINCT org_id FROM org_wallets WHERE wallet_id = %s"


def traded_dexes(conn: psycopg.Connection, wallet_id: int) -> list[str]:
    return [row[0] for row in conn.execute(SELECT_TRADED_DEXES, (wallet_id,))]


def collaterals(conn: psycopg.Connection, dexes: Sequence[str]) -> dict[str, str]:
    """Each dex's collateral token where known; the default dex ("") is USDC."""
    rows = conn.execute(SELECT_COLLATERAL, (list(dexes),)).fetchall()
    return {"": DEFAULT_DEX_COLLATERAL, **{str(dex): str(token) for dex, token in rows}}


def store(
    conn: psycopg.Connection,
    wallet_id: int,
    snapshot: Snapshot,
    collateral: Mapping[str, str],
    usd_tokens: Sequence[str],
) -> Totals | None:
    """Writes the snapshot in the caller's transaction unless a newer one is stored
    (then None); returns its totals."""
    conn.execute(LOCK_WALLET, (_LOCK_CLASS, wallet_id))
    row = conn.execute(SELECT_LATEST_MS, (wallet_id,)).fetchone()
    if row and row[0] is not None and row[0] > snapshot.taken_ms:
        return None
    sums = totals(snapshot, collateral, usd_tokens)
    usd = set(usd_tokens)
    held = [p for d in snapshot.perps for p in d.positions]
    conn.execute(DELETE_POSITIONS, (wallet_id,))
    conn.execute(DELETE_BALANCES, (wallet_id,))
    with conn.cursor() as cur:
        cur.executemany(
            INSERT_POSITION,
            [_position_row(wallet_id, p, p.dex in sums.usd_dexes) for p in held],
        )
        cur.executemany(
            INSERT_BALANCE,
            [
                (wallet_id, b.coin, b.total, b.hold, b.entry_ntl, b.coin in usd)
                for b in snapshot.balances
            ],
        )
    conn.execute(
        UPSERT_DAY,
        (
            wallet_id,
            snapshot.day,
            snapshot.taken_ms,
            sums.account_value_usd,
            sums.unrealized_pnl_usd,
            sums.open_positions,
        ),
    )
    return sums


def _position_row(wallet_id: int, p: Position, usd_priced: bool) -> tuple[object, ...]:
    return (
        wallet_id, p.coin, p.dex, p.size, p.entry_px, p.position_value, p.unrealized_pnl,
        p.leverage_type, p.leverage, p.liquidation_px, p.margin_used, p.funding_since_open,
        usd_priced,
    )  # fmt: skip


def tracking_orgs(conn: psycopg.Connection, wallet_id: int) -> list[uuid.UUID]:
    return [row[0] for row in conn.execute(SELECT_TRACKING_ORGS, (wallet_id,))]


@dataclass(frozen=True)
class StoredDay:
    day: date
    taken_ms: int
    account_value_usd: Decimal
    unrealized_pnl_usd: Decimal
    open_positions: int


SELECT_DAYS = """
SELECT day, taken_ms, account_value_usd, unrealized_pnl_usd, open_positions
FROM wallet_account_days WHERE wallet_id = %s ORDER BY day
"""
SELECT_POSITIONS = """
SELECT coin, dex, size, entry_px, position_value, unrealized_pnl, leverage_type, leverage,
       liquidation_px, margin_used, funding_since_open
FROM wallet_positions WHERE wallet_id = %s ORDER BY coin
"""


def account_days(conn: psycopg.Connection, wallet_id: int) -> list[StoredDay]:
    return [StoredDay(*row) for row in conn.execute(SELECT_DAYS, (wallet_id,))]


def positions(conn: psycopg.Connection, wallet_id: int) -> list[Position]:
    return [Position(*row) for row in conn.execute(SELECT_POSITIONS, (wallet_id,))]
