"""Validation of Hyperliquid's raw fills into typed `storage.fills.Fill` records.

The API sends decimals as strings (`"px": "18.435"`) and times and ids as
integers. Every field is checked; a fill that fails any check is rejected with
a reason naming the field, so one bad fill is quarantined while the rest of its
page is stored. The client decodes JSON numbers as `Decimal` (never float), so
a decimal that arrives as a number is still exact. Keys the parser does not
know (`builder`, `deployerFee` and whatever Hyperliquid adds later) are kept
per fill as JSON, since a fill older than the 10,000 most recent cannot be
fetched again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from storage.fills import Fill

_MAX_BIGINT = 2**63 - 1
SIDES = ("B", "A")
# Every key a fill's typed fields come from; any other key is kept in `Fill.extra`.
KNOWN_KEYS = frozenset(
    {
        "coin", "px", "sz", "side", "time", "startPosition", "dir", "closedPnl", "hash",
        "oid", "crossed", "fee", "tid", "feeToken", "builderFee", "cloid", "twapId",
        "liquidation",
    }
)  # fmt: skip


class InvalidFill(ValueError):
    """A raw fill does not have the shape and types of a Hyperliquid fill."""


def _decimal(raw: dict[str, Any], key: str, *, optional: bool = False) -> Decimal | None:
    value = raw.get(key)
    if value is None:
        if optional:
            return None
        raise InvalidFill(f"{key} is missing")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidFill(f"{key} must be a decimal string, got {value!r}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidFill(f"{key} must be a decimal string, got {value!r}") from None
    if not number.is_finite():
        raise InvalidFill(f"{key} must be a finite decimal, got {value!r}")
    return number


def _required_decimal(raw: dict[str, Any], key: str) -> Decimal:
    number = _decimal(raw, key)
    assert number is not None
    return number


def _integer(raw: dict[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFill(f"{key} must be an integer, got {value!r}")
    if not 0 <= value <= _MAX_BIGINT:
        raise InvalidFill(f"{key} is out of range: {value}")
    return value


def _text(raw: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidFill(f"{key} must be a non-empty string, got {value!r}")
    return value


def _required_text(raw: dict[str, Any], key: str) -> str:
    value = _text(raw, key)
    assert value is not None
    return value


def parse_fill(raw: object) -> Fill:
    """The typed fill, or `InvalidFill` saying which field is wrong."""
    if not isinstance(raw, dict):
        raise InvalidFill(f"a fill must be a JSON object, got {type(raw).__name__}")
    side = raw.get("side")
    if side not in SIDES:
        raise InvalidFill(f"side must be 'B' or 'A', got {side!r}")
    px = _required_decimal(raw, "px")
    sz = _required_decimal(raw, "sz")
    if px < 0 or sz < 0:
        raise InvalidFill(f"px and sz must not be negative, got px={px} sz={sz}")
    crossed = raw.get("crossed")
    if not isinstance(crossed, bool):
        raise InvalidFill(f"crossed must be true or false, got {crossed!r}")
    time_ms = _integer(raw, "time")
    tid = _integer(raw, "tid")
    oid = _integer(raw, "oid")
    assert time_ms is not None and tid is not None and oid is not None
    liquidation = raw.get("liquidation")
    if liquidation is not None and not isinstance(liquidation, dict):
        raise InvalidFill(f"liquidation must be an object, got {liquidation!r}")
    liq = liquidation or {}
    return Fill(
        time=time_ms,
        tid=tid,
        oid=oid,
        coin=_required_text(raw, "coin"),
        side=str(side),
        px=px,
        sz=sz,
        dir=_required_text(raw, "dir"),
        start_position=_required_decimal(raw, "startPosition"),
        closed_pnl=_required_decimal(raw, "closedPnl"),
        fee=_required_decimal(raw, "fee"),
        fee_token=_required_text(raw, "feeToken"),
        builder_fee=_decimal(raw, "builderFee", optional=True),
        hash=_required_text(raw, "hash"),
        crossed=crossed,
        cloid=_text(raw, "cloid", optional=True),
        twap_id=_integer(raw, "twapId", optional=True),
        liquidated_user=_text(liq, "liquidatedUser", optional=True),
        liquidation_mark_px=_decimal(liq, "markPx", optional=True),
        liquidation_method=_text(liq, "method", optional=True),
        extra=_unknown_keys(raw),
    )


def _unknown_keys(raw: dict[str, Any]) -> str | None:
    """The raw fill's keys the parser does not know, as JSON text, or None."""
    unknown = {k: v for k, v in raw.items() if k not in KNOWN_KEYS}
    if not unknown:
        return None
    # Decimals arrive as Decimal (the client never decodes floats): keep their digits.
    return json.dumps(unknown, default=str, sort_keys=True)


def parse_fills(raws: Iterable[object]) -> tuple[list[Fill], list[tuple[object, str]]]:
    """Splits a page into valid fills and (raw, reason) rejections, keeping order."""
    fills: list[Fill] = []
    rejected: list[tuple[object, str]] = []
    for raw in raws:
        try:
            fills.append(parse_fill(raw))
        except InvalidFill as exc:
            rejected.append((raw, str(exc)))
    return fills, rejected
