"""One simulated trader: a seeded random stream of orders turned into raw fills.

Each trader owns its random generator and its clock of the next order, so the
fills it produces depend only on the market seed and its own index, never on
how often or in what steps the market is advanced: advancing to T in one step
or in a thousand gives byte-identical fills.

Raw fills are built exactly as Hyperliquid's `/info` sends them: decimals as
strings, `time`/`tid`/`oid` as integers, `feeToken` the base token on a spot
buy, `fee` inclusive of `builderFee`, negative fees for maker rebates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hlsim.coins import PERPS, QUOTE, SPOT, Coin

DAY_MS = 86_400_000
RawFill = dict[str, Any]

TAKER_PERP = Decimal("0.00045")
TAKER_SPOT = Decimal("0.0007")
MAKER = Decimal("0.00015")
REBATE = Decimal("-0.00002")
BUILDER = Decimal("0.0001")
_ZERO = Decimal(0)


def fmt(value: Decimal, places: int = 6) -> str:
    """A decimal string the way the API writes one: no exponent, at least one decimal."""
    quantized = value.quantize(Decimal(1).scaleb(-places))
    if quantized == 0:
        return "0.0"
    text = format(quantized.normalize(), "f")
    return text if "." in text else text + ".0"


@dataclass
class Position:
    size: Decimal = _ZERO  # signed for perps, a balance for spot
    entry: Decimal = _ZERO


@dataclass
class Trader:
    """A wallet's trading behaviour; `fills_until` yields its fills in time order."""

    address: str
    index: int
    seed: int
    fills_per_day: float
    next_ms: int
    rng: random.Random = field(init=False)
    coins: tuple[Coin, ...] = field(init=False)
    maker_rebates: bool = field(init=False)
    builder: bool = field(init=False)
    positions: dict[str, Position] = field(default_factory=dict)
    counter: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"hlsim:{self.seed}:{self.index}")
        rng = self.rng
        self.coins = tuple(
            rng.sample(PERPS, rng.randint(1, 3)) + rng.sample(SPOT, rng.randint(0, 2))
        )
        self.maker_rebates = rng.random() < 0.4
        self.builder = rng.random() < 0.5
        self.next_ms += self._gap()

    def _gap(self) -> int:
        # fills_per_day counts fills; an order averages about two fills
        mean = DAY_MS / max(self.fills_per_day / 2.2, 1e-9)
        return max(1, int(self.rng.expovariate(1.0 / mean)))

    def next_id(self) -> int:
        self.counter += 1
        return 900_000_000_000 + self.index * 10_000_000_000 + self.counter

    def fills_until(self, now_ms: int) -> list[RawFill]:
        """Every fill of orders placed up to `now_ms` not produced yet, oldest first."""
        out: list[RawFill] = []
        while self.next_ms <= now_ms:
            at = self.next_ms
            out.extend(self._order(at))
            following = at + self._gap()
            midnight = (at // DAY_MS + 1) * DAY_MS
            # Some orders land exactly on UTC midnight, where day bucketing is easiest to get wrong.
            if following >= midnight and self.rng.random() < 0.3:
                following = midnight
            self.next_ms = following
        return out

    def _order(self, at: int) -> list[RawFill]:
        rng = self.rng
        coin = rng.choice(self.coins)
        roll = rng.random()
        if roll < 0.05:
            return self.self_trade(coin, at)
        if roll < 0.08 and not coin.spot:
            liquidated = self.liquidation(coin, at)
            if liquidated:
                return liquidated
        if roll < 0.11:
            return self.sweep(coin, at, rng.randint(8, 40))
        side = "B" if rng.random() < 0.5 else "A"
        crossed = rng.random() < 0.6
        oid = self.next_id()
        return [
            self.fill(coin, at, side, crossed=crossed, oid=oid)
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4)))
        ]

    def sweep(self, coin: Coin, at: int, count: int, side: str | None = None) -> list[RawFill]:
        """One taker order filled against `count` resting orders in the same millisecond."""
        side = side or ("B" if self.rng.random() < 0.5 else "A")
        oid = self.next_id()
        return [self.fill(coin, at, side, crossed=True, oid=oid) for _ in range(count)]

    def self_trade(self, coin: Coin, at: int) -> list[RawFill]:
        """The wallet on both sides of one trade: one tid, two orders."""
        tid = self.next_id()
        sz = self._size(coin)
        px = self._price(coin)
        maker = self.fill(coin, at, "B", crossed=False, tid=tid, sz=sz, px=px)
        taker = self.fill(coin, at, "A", crossed=True, tid=tid, sz=sz, px=px)
        return [maker, taker]

    def liquidation(self, coin: Coin, at: int) -> list[RawFill]:
        pos = self.positions.get(coin.name)
        if pos is None or pos.size == 0:
            return []
        side = "A" if pos.size > 0 else "B"
        px = self._price(coin)
        extra = {
            "liquidation": {
                "liquidatedUser": self.address,
                "markPx": fmt(px, coin.px_places),
                "method": "market",
            }
        }
        return [self.fill(coin, at, side, crossed=True, sz=abs(pos.size), px=px, extra=extra)]

    def _price(self, coin: Coin) -> Decimal:
        drift = Decimal(str(round(self.rng.uniform(-0.04, 0.04), 5)))
        return (coin.price * (1 + drift)).quantize(coin.tick)

    def _size(self, coin: Coin) -> Decimal:
        notional = Decimal(str(round(self.rng.lognormvariate(6.0, 1.2), 2)))
        return max(coin.lot, (notional / coin.price).quantize(coin.lot))

    def fill(
        self,
        coin: Coin,
        at: int,
        side: str,
        *,
        crossed: bool,
        oid: int | None = None,
        tid: int | None = None,
        sz: Decimal | None = None,
        px: Decimal | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RawFill:
        """One raw fill, updating the trader's position in `coin`."""
        rng = self.rng
        px = px if px is not None else self._price(coin)
        sz = sz if sz is not None else self._size(coin)
        pos = self.positions.setdefault(coin.name, Position())
        start = pos.size
        if coin.spot:
            direction, closed = ("Buy" if side == "B" else "Sell"), _ZERO
            if side == "A":
                sz = min(sz, max(start, coin.lot)) if start > 0 else sz
        else:
            direction, closed, sz = self._perp_direction(pos, side, sz, px, coin)
        notional = px * sz
        if crossed:
            rate = TAKER_SPOT if coin.spot else TAKER_PERP
        else:
            rate = REBATE if self.maker_rebates and rng.random() < 0.7 else MAKER
        builder_fee: Decimal | None = None
        if coin.spot and side == "B":
            # A spot buy pays its fee in the base token it receives.
            fee_token, fee = coin.base, (sz * rate).quantize(Decimal("0.00000001"))
        else:
            fee_token, fee = QUOTE, (notional * rate).quantize(Decimal("0.000001"))
            if self.builder and crossed and rng.random() < 0.5:
                builder_fee = (notional * BUILDER).quantize(Decimal("0.000001"))
                fee += builder_fee  # the API's fee is inclusive of builderFee
        self._apply(pos, coin, side, sz, px)
        raw: RawFill = {
            "coin": coin.name,
            "px": fmt(px, coin.px_places),
            "sz": fmt(sz, coin.sz_places),
            "side": side,
            "time": at,
            "startPosition": fmt(start, coin.sz_places),
            "dir": direction,
            "closedPnl": fmt(closed),
            "hash": "0x" + f"{rng.getrandbits(256):064x}",
            "oid": oid if oid is not None else self.next_id(),
            "crossed": crossed,
            "fee": fmt(fee, 8),
            "tid": tid if tid is not None else self.next_id(),
            "feeToken": fee_token,
            "twapId": None,
        }
        if builder_fee is not None:
            raw["builderFee"] = fmt(builder_fee)
        if rng.random() < 0.2:
            raw["cloid"] = "0x" + f"{rng.getrandbits(128):032x}"
        if extra:
            raw.update(extra)
        return raw

    def _perp_direction(
        self, pos: Position, side: str, sz: Decimal, px: Decimal, coin: Coin
    ) -> tuple[str, Decimal, Decimal]:
        if side == "B" and pos.size < 0:
            sz = min(sz, -pos.size)
            return "Close Short", (pos.entry - px) * sz, sz
        if side == "A" and pos.size > 0:
            sz = min(sz, pos.size)
            return "Close Long", (px - pos.entry) * sz, sz
        return ("Open Long" if side == "B" else "Open Short"), _ZERO, sz

    @staticmethod
    def _apply(pos: Position, coin: Coin, side: str, sz: Decimal, px: Decimal) -> None:
        signed = sz if side == "B" else -sz
        new_size = pos.size + signed
        if coin.spot:
            pos.size = max(new_size, _ZERO)
            return
        opening = pos.size == 0 or (pos.size > 0) == (signed > 0)
        if opening and new_size != 0:
            pos.entry = (pos.entry * abs(pos.size) + px * sz) / abs(new_size)
        pos.size = new_size
