"""Non-funding ledger updates (`hl_ledger`), their classes, and their quarantine.

The classes are the README's table of update types (domain rules), decided here
from the update and the wallet it belongs to:

- `deposit` (a bridge deposit): deposit, its `usdc`;
- `withdraw` (a bridge withdrawal): withdrawal, `usdc` + `fee`;
- `internalTransfer`, `send`, `spotTransfer`: received from another address, a
  deposit of `usdc` (`usdcValue` for `send`/`spotTransfer`); sent to another
  address, a withdrawal of that + `fee`; between the wallet and itself, neither;
- `accountClassTransfer` (its own perp↔spot move), `subAccountTransfer` (a move
  within one owner): neither;
- `vaultCreate`, `vaultDeposit`: vault_deposit, `usdc`; `vaultWithdraw`:
  vault_withdrawal, `netWithdrawnUsd`; `vaultDistribution`: vault_withdrawal, `usdc`;
- `liquidation`, `rewardsClaim`, `cStakingTransfer`, `spotGenesis`,
  `deployGasAuction`, `activateDexAbstraction`, `accountActivationGas`,
  `perpDexClassTransfer`: neither;
- anything else: unknown — stored, counted in neither, listed by `status`.

Updates are stored idempotently on (wallet, time, hash) and, where the hash is
zero, a digest of the delta's own fields (`delta_key`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from storage.fills import day_of

ZERO_HASH = "0x" + "0" * 64
TRANSFERS = frozenset({"internalTransfer", "send", "spotTransfer"})
NEITHER = frozenset(
    {
        "accountClassTransfer",
        "subAccountTransfer",
        "liquidation",
        "rewardsClaim",
        "cStakingTransfer",
        "spotGenesis",
        "deployGasAuction",
        "activateDexAbstraction",
        "accountActivationGas",
        "perpDexClassTransfer",
    }
)
CLASSES = ("deposit", "withdrawal", "neither", "vault_deposit", "vault_withdrawal", "unknown")


@dataclass(frozen=True, slots=True)
class LedgerUpdate:
    time: int
    hash: str
    type: str
    cls: str
    usdc: Decimal | None
    delta: dict[str, Any]

    @property
    def delta_key(self) -> str:
        """'' when the hash identifies the update; else a digest of the delta's fields."""
        if self.hash != ZERO_HASH:
            return ""
        text = json.dumps(self.delta, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def identity(update: LedgerUpdate) -> tuple[int, str, str]:
    """Within one wallet: (time, hash, delta_key)."""
    return update.time, update.hash, update.delta_key


class Unreadable(ValueError):
    """A known update type lacks a field its class needs."""


def _amount(delta: dict[str, Any], key: str) -> Decimal:
    value = delta.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise Unreadable(f"delta.{key} must be a decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise Unreadable(f"delta.{key} must be a decimal string, got {value!r}") from None
    if not number.is_finite():
        raise Unreadable(f"delta.{key} must be a finite decimal, got {value!r}")
    return number


def _party(delta: dict[str, Any], key: str) -> str:
    value = delta.get(key)
    if not isinstance(value, str) or not value:
        raise Unreadable(f"delta.{key} must be an address, got {value!r}")
    return value.lower()


def classify(kind: str, delta: dict[str, Any], wallet: str) -> tuple[str, Decimal | None]:
    """The update's class and the USDC it counts with (see the module's table)."""
    if kind == "deposit":
        return "deposit", _amount(delta, "usdc")
    if kind == "withdraw":
        return "withdrawal", _amount(delta, "usdc") + _amount(delta, "fee")
    if kind in TRANSFERS:
        amount = _amount(delta, "usdc" if kind == "internalTransfer" else "usdcValue")
        sender, receiver = _party(delta, "user"), _party(delta, "destination")
        fee = _amount(delta, "fee") if delta.get("fee") is not None else Decimal(0)
        if sender == receiver:
            return "neither", None
        if receiver == wallet.lower():
            return "deposit", amount
        if sender == wallet.lower():
            return "withdrawal", amount + fee
        raise Unreadable(f"a {kind} neither from nor to {wallet}")
    if kind in ("vaultCreate", "vaultDeposit"):
        return "vault_deposit", _amount(delta, "usdc")
    if kind == "vaultWithdraw":
        return "vault_withdrawal", _amount(delta, "netWithdrawnUsd")
    if kind == "vaultDistribution":
        return "vault_withdrawal", _amount(delta, "usdc")
    if kind in NEITHER:
        return "neither", None
    return "unknown", None


INSERT_LEDGER = """
INSERT INTO hl_ledger (wallet_id, time, hash, delta_key, type, class, usdc, delta)
SELECT %(wallet_id)s, t.time, t.hash, t.dkey, t.type, t.class, t.usdc, t.delta
FROM unnest(%(times)s::bigint[], %(hashes)s::text[], %(keys)s::text[], %(types)s::text[],
            %(classes)s::text[], %(usdc)s::numeric[], %(deltas)s::jsonb[])
     AS t(time, hash, dkey, type, class, usdc, delta)
ORDER BY t.time, t.hash, t.dkey
ON CONFLICT (wallet_id, time, hash, delta_key) DO NOTHING
RETURNING time, class
"""
INSERT_QUARANTINE = "INSERT INTO hl_ledger_quarantine (wallet_id, raw, reason) VALUES (%s, %s, %s)"
COUNT_QUARANTINE = "SELECT count(*) FROM hl_ledger_quarantine WHERE wallet_id = %s"
SELECT_WALLET_LEDGER = """
SELECT time, hash, type, class, usdc, delta FROM hl_ledger WHERE wallet_id = %s
ORDER BY time, hash, delta_key
"""
# The types no rule classifies, over the tracked wallets: `hl-analytics status` lists them.
SELECT_UNKNOWN_TYPES = """
SELECT l.type, count(*)::bigint, count(DISTINCT l.wallet_id)::integer, max(l.time)
FROM hl_ledger l
WHERE l.class = 'unknown' AND EXISTS (SELECT 1 FROM org_wallets ow WHERE ow.wallet_id = l.wallet_id)
GROUP BY l.type ORDER BY l.type
"""


def insert_ledger(
    conn: psycopg.Connection, wallet_id: int, batch: Sequence[LedgerUpdate]
) -> dict[date, int]:
    """Stores the updates not stored yet, in the caller's transaction; returns the new
    deposits and withdrawals per UTC day (what wallet-days count)."""
    if not batch:
        return {}
    rows = list({identity(u): u for u in batch}.values())
    params: dict[str, Any] = {
        "wallet_id": wallet_id,
        "times": [u.time for u in rows],
        "hashes": [u.hash for u in rows],
        "keys": [u.delta_key for u in rows],
        "types": [u.type for u in rows],
        "classes": [u.cls for u in rows],
        "usdc": [u.usdc for u in rows],
        "deltas": [json.dumps(u.delta, default=str) for u in rows],
    }
    counted = (
        day_of(time_ms)
        for time_ms, cls in conn.execute(INSERT_LEDGER, params)
        if cls in ("deposit", "withdrawal")
    )
    return dict(Counter(counted))


def quarantine(conn: psycopg.Connection, wallet_id: int, raw: Any, reason: str) -> None:
    conn.execute(INSERT_QUARANTINE, (wallet_id, json.dumps(raw, default=str), reason))


def quarantined(conn: psycopg.Connection, wallet_id: int) -> int:
    row = conn.execute(COUNT_QUARANTINE, (wallet_id,)).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class StoredUpdate:
    time: int
    hash: str
    type: str
    cls: str
    usdc: Decimal | None
    delta: dict[str, Any]


def wallet_ledger(conn: psycopg.Connection, wallet_id: int) -> list[StoredUpdate]:
    return [StoredUpdate(*row) for row in conn.execute(SELECT_WALLET_LEDGER, (wallet_id,))]


@dataclass(frozen=True)
class UnknownType:
    type: str
    updates: int
    wallets: int
    last_ms: int


def unknown_types(conn: psycopg.Connection) -> list[UnknownType]:
    return [UnknownType(*row) for row in conn.execute(SELECT_UNKNOWN_TYPES)]
