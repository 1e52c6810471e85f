"""Non-funding ledger updates of the simulated market (`userNonFundingLedgerUpdates`).

Each wallet that trades first deposits `FIRST_DEPOSIT` USDC an hour before its
first fill (its perp collateral on the default dex, hlsim.account); then, about
once a day, one update drawn from the wallet's own seeded generator: a bridge
deposit or withdrawal (with its fee), a perp↔spot move of its own
(`accountClassTransfer`, zero hash, sometimes two in one millisecond), a USDC
transfer from or to another address (`internalTransfer`), a sub-account move
(`subAccountTransfer`), a spot token sent or received (`spotTransfer`, with
`usdcValue`), a vault deposit or withdrawal, a rewards claim, or a type this
project does not classify (`borrowLend`). Shapes follow Hyperliquid's:
`{time, hash, delta: {type, ...}}`, decimals as strings.

`perp_usdc(updates, address)` is what they add to the default dex's collateral and
`spot_usdc(...)` to the spot USDC balance, so account states follow them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from hlsim.trader import DAY_MS, ZERO_HASH, fmt

HOUR_MS = 3_600_000
FIRST_DEPOSIT = Decimal(10_000)
VAULT = "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303"
KINDS = (
    "deposit",
    "withdraw",
    "accountClassTransfer",
    "internalTransferIn",
    "internalTransferOut",
    "subAccountTransfer",
    "spotTransferIn",
    "spotTransferOut",
    "vaultDeposit",
    "vaultWithdraw",
    "rewardsClaim",
    "borrowLend",
)
ZERO = Decimal(0)


def _other(rng: random.Random) -> str:
    return "0x" + f"{rng.getrandbits(160):040x}"


def _amount(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def _update(rng: random.Random, address: str, at: int) -> list[dict[str, Any]]:
    kind = rng.choice(KINDS)
    tx = "0x" + f"{rng.getrandbits(256):064x}"
    usdc = _amount(rng, 50, 3000)
    one: dict[str, Any]
    if kind == "deposit":
        one = {"type": "deposit", "usdc": fmt(usdc)}
    elif kind == "withdraw":
        one = {"type": "withdraw", "usdc": fmt(usdc), "nonce": at, "fee": "1.0"}
    elif kind == "accountClassTransfer":
        moves = [
            {"type": "accountClassTransfer", "usdc": fmt(_amount(rng, 10, 500)), "toPerp": p}
            for p in (rng.random() < 0.5, rng.random() < 0.5)
        ]
        return [{"time": at, "hash": ZERO_HASH, "delta": m} for m in moves]
    elif kind == "internalTransferIn":
        one = {
            "type": "internalTransfer", "usdc": fmt(usdc), "user": _other(rng),
            "destination": address, "fee": "0.0",
        }  # fmt: skip
    elif kind == "internalTransferOut":
        one = {
            "type": "internalTransfer", "usdc": fmt(usdc), "user": address,
            "destination": _other(rng), "fee": "1.0",
        }  # fmt: skip
    elif kind == "subAccountTransfer":
        one = {
            "type": "subAccountTransfer", "usdc": fmt(usdc), "user": address,
            "destination": _other(rng),
        }  # fmt: skip
    elif kind in ("spotTransferIn", "spotTransferOut"):
        token, amount = rng.choice((("USDC", usdc), ("HYPE", _amount(rng, 1, 40))))
        value = amount if token == "USDC" else amount * 24
        sender, receiver = (
            (_other(rng), address) if kind == "spotTransferIn" else (address, _other(rng))
        )
        one = {
            "type": "spotTransfer", "token": token, "amount": fmt(amount, 8),
            "usdcValue": fmt(value), "user": sender, "destination": receiver, "fee": "0.0",
        }  # fmt: skip
    elif kind == "vaultDeposit":
        one = {"type": "vaultDeposit", "vault": VAULT, "usdc": fmt(usdc)}
    elif kind == "vaultWithdraw":
        one = {
            "type": "vaultWithdraw", "vault": VAULT, "user": address, "requestedUsd": fmt(usdc),
            "commission": "0.0", "closingCost": "0.0", "basis": fmt(usdc),
            "netWithdrawnUsd": fmt(usdc),
        }  # fmt: skip
    elif kind == "rewardsClaim":
        one = {"type": "rewardsClaim", "amount": fmt(_amount(rng, 1, 20)), "token": "USDC"}
    else:
        one = {"type": "borrowLend", "token": "USDC", "operation": "supply", "amount": fmt(usdc)}
    return [{"time": at, "hash": tx, "delta": one}]


def updates(seed: int, address: str, first_fill_ms: int | None, now_ms: int) -> list[Any]:
    """Every ledger update of the wallet up to `now_ms`, oldest first."""
    if first_fill_ms is None:
        return []
    rng = random.Random(hashlib.sha256(f"hlsim-ledger:{seed}:{address}".encode()).digest())
    start = first_fill_ms - HOUR_MS
    out: list[Any] = []
    if start <= now_ms:
        delta = {"type": "deposit", "usdc": fmt(FIRST_DEPOSIT)}
        out.append({"time": start, "hash": "0x" + f"{rng.getrandbits(256):064x}", "delta": delta})
    at = start + rng.randint(HOUR_MS, DAY_MS)
    while at <= now_ms:
        out.extend(_update(rng, address, at))
        at += rng.randint(HOUR_MS, DAY_MS)
    return out


def well_formed(entry: Any) -> bool:
    """Whether an account can follow the entry (a planted malformed one it cannot)."""
    try:
        perp_usdc([entry], "")
        spot_changes([entry], "")
    except (KeyError, TypeError, ArithmeticError):
        return False
    return True


def perp_usdc(entries: Iterable[Any], address: str) -> Decimal:
    """What the updates add to the wallet's USDC collateral on the default dex."""
    total = ZERO
    for e in entries:
        d = e["delta"]
        kind = d["type"]
        if kind == "deposit":
            total += Decimal(d["usdc"])
        elif kind == "withdraw":
            total -= Decimal(d["usdc"]) + Decimal(d["fee"])
        elif kind == "accountClassTransfer":
            total += Decimal(d["usdc"]) if d["toPerp"] else -Decimal(d["usdc"])
        elif kind == "internalTransfer":
            sent = Decimal(d["usdc"]) + Decimal(d["fee"])
            total += Decimal(d["usdc"]) if d["destination"] == address else -sent
        elif kind in ("subAccountTransfer", "vaultDeposit"):
            total -= Decimal(d["usdc"])
        elif kind == "vaultWithdraw":
            total += Decimal(d["netWithdrawnUsd"])
    return total


def spot_changes(entries: Iterable[Any], address: str) -> dict[str, Decimal]:
    """What the updates add to the wallet's spot balances, by token."""
    out: dict[str, Decimal] = {}
    for e in entries:
        d = e["delta"]
        kind = d["type"]
        if kind == "accountClassTransfer":
            moved = Decimal(d["usdc"])
            out["USDC"] = out.get("USDC", ZERO) + (-moved if d["toPerp"] else moved)
        elif kind == "spotTransfer":
            amount = Decimal(d["amount"])
            sign = 1 if d["destination"] == address else -1
            out[d["token"]] = out.get(d["token"], ZERO) + sign * amount
        elif kind == "rewardsClaim":
            out[d["token"]] = out.get(d["token"], ZERO) + Decimal(d["amount"])
    return out
