"""Small builders of test data shared by several test modules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from storage.fills import Fill


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def fill(time: int, tid: int = 1, oid: int = 1, **overrides: object) -> Fill:
    values: dict[str, object] = {
        "time": time,
        "tid": tid,
        "oid": oid,
        "coin": "BTC",
        "side": "B",
        "px": Decimal("100.5"),
        "sz": Decimal("2"),
        "dir": "Open Long",
        "start_position": Decimal("0"),
        "closed_pnl": Decimal("0"),
        "fee": Decimal("0.1"),
        "fee_token": "USDC",
        "builder_fee": None,
        "hash": "0x" + "ab" * 32,
        "crossed": True,
    }
    values.update(overrides)
    return Fill(**values)  # type: ignore[arg-type]


def address(n: int) -> str:
    return "0x" + f"{n:040x}"
