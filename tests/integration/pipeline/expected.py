"""An independent computation of DESIGN.md's metrics in Python, with Decimal.

Written from the domain rules, not from the SQL, so that the tests compare two
implementations of the same definitions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from storage.fills import Fill

ZERO = Decimal(0)


def utc_day(time_ms: int) -> date:
    return datetime.fromtimestamp(time_ms / 1000, UTC).date()


def is_spot(coin: str) -> bool:
    return coin.startswith("@") or "/" in coin


def fee_usd(f: Fill) -> Decimal:
    return f.fee if f.fee_token == "USDC" else f.fee * f.px


@dataclass
class Day:
    trade_count: int = 0
    spot: Decimal = ZERO
    perp: Decimal = ZERO
    fees: Decimal = ZERO
    pnl: Decimal = ZERO
    dau: int = 0

    @property
    def total(self) -> Decimal:
        return self.spot + self.perp

    @property
    def avg_per_user(self) -> Decimal:
        if not self.dau:
            return ZERO
        return (self.total / self.dau).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass
class Expected:
    wallet_days: dict[tuple[int, date], Day] = field(default_factory=dict)

    def add(self, wallet_id: int, fills: Iterable[Fill]) -> None:
        for f in fills:
            day = self.wallet_days.setdefault((wallet_id, utc_day(f.time)), Day())
            day.trade_count += 1
            if is_spot(f.coin):
                day.spot += f.px * f.sz
            else:
                day.perp += f.px * f.sz
            day.fees += fee_usd(f)
            day.pnl += f.closed_pnl

    def org_days(self, wallet_ids: Iterable[int]) -> dict[date, Day]:
        members = set(wallet_ids)
        days: dict[date, Day] = defaultdict(Day)
        for (wallet_id, day), w in self.wallet_days.items():
            if wallet_id not in members:
                continue
            d = days[day]
            d.dau += 1
            d.trade_count += w.trade_count
            d.spot += w.spot
            d.perp += w.perp
            d.fees += w.fees
            d.pnl += w.pnl
        return dict(days)


def add_raw(expected: Expected, wallet_id: int, raws: Iterable[Mapping[str, object]]) -> None:
    """Adds raw API fills (JSON objects with decimal strings), as the exchange serves them."""
    for raw in raws:
        day = expected.wallet_days.setdefault((wallet_id, utc_day(int(str(raw["time"])))), Day())
        px, sz, fee = (Decimal(str(raw[k])) for k in ("px", "sz", "fee"))
        day.trade_count += 1
        if is_spot(str(raw["coin"])):
            day.spot += px * sz
        else:
            day.perp += px * sz
        day.fees += fee if raw["feeToken"] == "USDC" else fee * px
        day.pnl += Decimal(str(raw["closedPnl"]))


def by_wallet(fills: Mapping[int, Iterable[Fill]]) -> Expected:
    expected = Expected()
    for wallet_id, wallet_fills in fills.items():
        expected.add(wallet_id, wallet_fills)
    return expected
