"""Validation of `userNonFundingLedgerUpdates` entries into typed, classified updates.

An entry is `{time, hash, delta: {type, ...}}`. The envelope is checked, and the
fields the update's class needs (storage.ledger.classify: amounts, the sender and
receiver of a transfer); an entry that fails is rejected with a reason naming the
field, to be quarantined while the rest of its page is stored. An update of a
type no rule knows is not rejected: it is stored, classed `unknown`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from storage.ledger import LedgerUpdate, Unreadable, classify


class InvalidLedgerUpdate(ValueError):
    """A raw entry does not have the shape and types of a ledger update."""


def parse_ledger_update(raw: object, wallet: str) -> LedgerUpdate:
    if not isinstance(raw, dict):
        raise InvalidLedgerUpdate(
            f"a ledger update must be a JSON object, got {type(raw).__name__}"
        )
    time_ms = raw.get("time")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0:
        raise InvalidLedgerUpdate(f"time must be an integer, got {time_ms!r}")
    tx = raw.get("hash")
    if not isinstance(tx, str) or not tx:
        raise InvalidLedgerUpdate(f"hash must be a non-empty string, got {tx!r}")
    delta: Any = raw.get("delta")
    if not isinstance(delta, dict):
        raise InvalidLedgerUpdate(f"delta must be an object, got {delta!r}")
    kind = delta.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidLedgerUpdate(f"delta.type must be a non-empty string, got {kind!r}")
    try:
        cls, usdc = classify(kind, delta, wallet)
    except Unreadable as exc:
        raise InvalidLedgerUpdate(f"{kind}: {exc}") from None
    return LedgerUpdate(time_ms, tx, kind, cls, usdc, delta)


def parse_ledger(
    raws: Iterable[object], wallet: str
) -> tuple[list[LedgerUpdate], list[tuple[object, str]]]:
    """Splits a page into valid updates and (raw, reason) rejections, keeping order."""
    good: list[LedgerUpdate] = []
    rejected: list[tuple[object, str]] = []
    for raw in raws:
        try:
            good.append(parse_ledger_update(raw, wallet))
        except InvalidLedgerUpdate as exc:
            rejected.append((raw, str(exc)))
    return good, rejected
