"""Validation of `clearinghouseState` and `spotClearinghouseState` answers into a typed
snapshot (`storage.positions`).

Every field the snapshot keeps is checked; one that fails makes the whole answer
invalid (`InvalidSnapshot`, naming the field), since a snapshot is only worth
keeping whole: the caller keeps the previous one and logs why.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jobs.hl_parse import InvalidFill, _decimal, _integer, _required_decimal, _required_text
from storage.positions import Balance, PerpDex, Position


class InvalidSnapshot(ValueError):
    """An answer does not have the shape and types of Hyperliquid's account state."""


def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidSnapshot(f"{what} must be an object, got {type(raw).__name__}")
    return raw


def _list(raw: Any, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidSnapshot(f"{what} must be a list, got {type(raw).__name__}")
    return raw


def _position(raw: Any, dex: str, where: str) -> Position:
    pos = _object(_object(raw, where).get("position"), f"{where}.position")
    leverage = _object(pos.get("leverage"), f"{where}.position.leverage")
    funding = _object(pos.get("cumFunding"), f"{where}.position.cumFunding")
    kind = leverage.get("type")
    if kind not in ("cross", "isolated"):
        raise InvalidSnapshot(f"{where}.position.leverage.type must be cross or isolated")
    since_open = _required_decimal(funding, "sinceOpen")
    return Position(
        coin=_required_text(pos, "coin"),
        dex=dex,
        size=_required_decimal(pos, "szi"),
        entry_px=_decimal(pos, "entryPx", optional=True),
        position_value=_required_decimal(pos, "positionValue"),
        unrealized_pnl=_required_decimal(pos, "unrealizedPnl"),
        leverage_type=str(kind),
        leverage=_required_decimal(leverage, "value"),
        liquidation_px=_decimal(pos, "liquidationPx", optional=True),
        margin_used=_required_decimal(pos, "marginUsed"),
        # Hyperliquid's cumFunding counts funding paid as positive; ours is received.
        funding_since_open=-since_open,
    )


def parse_perp_state(raw: object, dex: str) -> PerpDex:
    """One dex's `clearinghouseState`, or `InvalidSnapshot` naming what is wrong."""
    try:
        state = _object(raw, "clearinghouseState")
        summary = _object(state.get("marginSummary"), "marginSummary")
        positions = [
            _position(p, dex, f"assetPositions[{i}]")
            for i, p in enumerate(_list(state.get("assetPositions"), "assetPositions"))
        ]
        time_ms = _integer(state, "time")
        assert time_ms is not None
        return PerpDex(
            dex=dex,
            time_ms=time_ms,
            account_value=_required_decimal(summary, "accountValue"),
            withdrawable=_required_decimal(state, "withdrawable"),
            positions=positions,
        )
    except InvalidFill as exc:
        raise InvalidSnapshot(f"clearinghouseState of dex {dex!r}: {exc}") from None
    except InvalidSnapshot as exc:
        raise InvalidSnapshot(f"clearinghouseState of dex {dex!r}: {exc}") from None


def parse_spot_state(raw: object) -> list[Balance]:
    """`spotClearinghouseState`'s balances, or `InvalidSnapshot` naming what is wrong."""
    try:
        state = _object(raw, "spotClearinghouseState")
        out: list[Balance] = []
        for i, b in enumerate(_list(state.get("balances"), "balances")):
            item = _object(b, f"balances[{i}]")
            total = _required_decimal(item, "total")
            out.append(
                Balance(
                    coin=_required_text(item, "coin"),
                    total=total,
                    hold=_decimal(item, "hold", optional=True) or Decimal(0),
                    entry_ntl=_decimal(item, "entryNtl", optional=True),
                )
            )
        return out
    except (InvalidFill, InvalidSnapshot) as exc:
        raise InvalidSnapshot(f"spotClearinghouseState: {exc}") from None
