"""One simulated trader: a seeded random stream of orders turned into raw fills.

Each trader owns its random generator and its clock of the next order, so the
fills it produces depend only on the market seed and its own index, never on
how often or in what steps the market is advanced: advancing to T in one step
or in a thousand gives byte-identical fills. Besides its orders, a trader has
system events at fixed times of every UTC day (dust conversions at 00:30,
outcome settlements at 20:00); they are merged with the orders in time order,
so they too draw from the generator in the same order whatever the steps.

Raw fills are built exactly as Hyperliquid's `/info` sends them: decimals as
strings, `time`/`tid`/`oid` as integers, `fee` inclusive of `builderFee`,
negative fees for maker rebates. `feeToken` is the collateral of a perp's dex
(USDC, or USDH on dex `xyz`), the quote token of a spot sell, the base token
of a spot buy; outcome trades pay no fee ("0.0", in USDC).

Directions: perps `Open Long`/`Close Long`/`Open Short`/`Close Short`, a
fill that closes one side and opens the other `Long > Short`/`Short > Long`,
liquidations `Liquidated Cross Long|Short` (`Liquidated Isolated …` on HIP-3
perps, which are isolated-only); spot and outcomes `Buy`/`Sell`, spot sells
with a `closedPnl` against the balance's average cost. System fills:
`Spot Dust Conversion` (tid 0, oid 0, zero hash; several in one millisecond)
and outcome `Settlement` (px 1.0 or 0.0, a real tid, oid 0, zero hash).
HIP-3 fills may carry keys outside the documented base list: `deployerFee`,
and `builder` next to `builderFee`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hlsim.coins import DEFAULT_PERPS, HIP3_PERPS, OUTCOMES, QUOTE, SPOT, USDC_SPOT, Coin

DAY_MS = 86_400_000
DUST_AT_MS = 30 * 60_000  # dust conversions: 00:30:00.000 UTC
SETTLE_AT_MS = 20 * 3_600_000  # outcome settlements: 20:00:00.000 UTC
RawFill = dict[str, Any]

TAKER_PERP = Decimal("0.00045")
TAKER_SPOT = Decimal("0.0007")
MAKER = Decimal("0.00015")
REBATE = Decimal("-0.00002")
BUILDER = Decimal("0.0001")
DEPLOYER_SHARE = Decimal("0.5")  # of a HIP-3 fill's exchange fee, reported as deployerFee
DUST_VALUE = Decimal(2)  # a spot balance worth less than this (in its quote) is dust
ZERO_HASH = "0x" + "0" * 64
BUILDER_ADDRESS = "0x1924b8561eef20e70ede628a296175d358be80e5"
_ZERO = Decimal(0)

DUST_DIR = "Spot Dust Conversion"
SETTLEMENT_DIR = "Settlement"
SYSTEM_DIRS = frozenset({DUST_DIR, SETTLEMENT_DIR})


def fmt(value: Decimal, places: int = 6) -> str:
    """A decimal string the way the API writes one: no exponent, at least one decimal."""
    quantized = value.quantize(Decimal(1).scaleb(-places))
    if quantized == 0:
        return "0.0"
    text = format(quantized.normalize(), "f")
    return text if "." in text else text + ".0"


@dataclass
class Position:
    size: Decimal = _ZERO  # signed for perps, a balance for spot and outcomes
    entry: Decimal = _ZERO  # average entry price (perps) or average cost (spot, outcomes)


def outcome_winner(seed: int, day: int) -> int:
    """The side (0 or 1) that wins the outcome settled on `day`: the same for every wallet."""
    return hashlib.sha256(f"hlsim-outcome:{seed}:{day}".encode()).digest()[0] % 2


def next_system_ms(after_ms: int) -> int:
    """The first dust or settlement time at or after `after_ms`."""
    day = after_ms // DAY_MS * DAY_MS
    for offset in (DUST_AT_MS, SETTLE_AT_MS, DAY_MS + DUST_AT_MS):
        if day + offset >= after_ms:
            return day + offset
    raise AssertionError("unreachable")


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
    system_ms: int = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"hlsim:{self.seed}:{self.index}")
        rng = self.rng
        self.system_ms = next_system_ms(self.next_ms)
        coins = rng.sample(DEFAULT_PERPS, rng.randint(1, 3))
        coins += rng.sample(SPOT[:3], rng.randint(0, 2))
        if rng.random() < 0.3:
            coins.append(rng.choice(HIP3_PERPS))
        if rng.random() < 0.2:
            coins.append(SPOT[3])  # HYPE/USDT0
        if rng.random() < 0.15:
            coins.append(SPOT[4])  # JEFF/PURR
        if rng.random() < 0.15:
            coins.extend(OUTCOMES)
        self.coins = tuple(coins)
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
        """Every fill of orders and system events up to `now_ms` not produced yet, oldest first."""
        out: list[RawFill] = []
        while min(self.next_ms, self.system_ms) <= now_ms:
            if self.system_ms <= self.next_ms:
                at = self.system_ms
                out.extend(self._system(at))
                self.system_ms = next_system_ms(at + 1)
                continue
            at = self.next_ms
            out.extend(self._order(at))
            following = at + self._gap()
            midnight = (at // DAY_MS + 1) * DAY_MS
            # Some orders land exactly on UTC midnight, where day bucketing is easiest to get wrong.
            if following >= midnight and self.rng.random() < 0.3:
                following = midnight
            self.next_ms = following
        return out

    def _system(self, at: int) -> list[RawFill]:
        if at % DAY_MS == DUST_AT_MS:
            dusty = [
                coin
                for coin in self.coins
                if coin in USDC_SPOT and self.is_dust(coin, self.balance(coin))
            ]
            return self.dust(dusty, at)
        held = [coin for coin in self.coins if coin.outcome and self.balance(coin) > 0]
        return [self.settlement(coin, at) for coin in held]

    def balance(self, coin: Coin) -> Decimal:
        pos = self.positions.get(coin.name)
        return pos.size if pos else _ZERO

    @staticmethod
    def is_dust(coin: Coin, size: Decimal) -> bool:
        return size > 0 and size * coin.price < DUST_VALUE

    def _order(self, at: int) -> list[RawFill]:
        rng = self.rng
        # A pair sold down to dust is left alone until the dust is converted.
        live = [c for c in self.coins if not (c in USDC_SPOT and self.is_dust(c, self.balance(c)))]
        coin = rng.choice(live or self.coins)
        roll = rng.random()
        if roll < 0.05:
            return self.self_trade(coin, at)
        if roll < 0.08 and coin.perp:
            liquidated = self.liquidation(coin, at)
            if liquidated:
                return liquidated
        if roll < 0.11:
            return self.sweep(coin, at, rng.randint(8, 40))
        side = self._side(coin)
        crossed = rng.random() < 0.6
        oid = self.next_id()
        return [
            self.fill(coin, at, side, crossed=crossed, oid=oid)
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4)))
        ]

    def _side(self, coin: Coin) -> str:
        side = "B" if self.rng.random() < 0.5 else "A"
        # Spot tokens and outcome contracts can only be sold when held.
        if side == "A" and not coin.perp and self.balance(coin) < coin.lot:
            return "B"
        return side

    def sweep(self, coin: Coin, at: int, count: int, side: str | None = None) -> list[RawFill]:
        """One taker order filled against `count` resting orders in the same millisecond."""
        side = side or self._side(coin)
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
        margin = "Isolated" if coin.dex else "Cross"
        extra = {
            "liquidation": {
                "liquidatedUser": self.address,
                "markPx": fmt(px, coin.px_places),
                "method": "market",
            }
        }
        raw = self.fill(coin, at, side, crossed=True, sz=abs(pos.size), px=px, extra=extra)
        raw["dir"] = f"Liquidated {margin} {'Long' if side == 'A' else 'Short'}"
        return [raw]

    def dust(self, coins: Iterable[Coin], at: int, sizes: Iterable[Decimal] = ()) -> list[RawFill]:
        """One dust conversion: every listed spot balance sold to USDC in the same millisecond.

        Each is its own fill with tid 0, oid 0 and a zero hash. `sizes` (by
        position) replace the balances, for planting.
        """
        out: list[RawFill] = []
        planted = list(sizes)
        for k, coin in enumerate(coins):
            pos = self.positions.setdefault(coin.name, Position())
            start = pos.size
            sz = planted[k] if k < len(planted) else start
            px = self._price(coin)
            closed = (px - pos.entry) * sz if pos.entry and start > 0 else _ZERO
            self._apply(pos, coin, "A", sz, px)
            out.append(
                {
                    "coin": coin.name,
                    "px": fmt(px, coin.px_places),
                    "sz": fmt(sz, coin.sz_places),
                    "side": "A",
                    "time": at,
                    "startPosition": fmt(start, coin.sz_places),
                    "dir": DUST_DIR,
                    "closedPnl": fmt(closed),
                    "hash": ZERO_HASH,
                    "oid": 0,
                    "crossed": False,
                    "fee": "0.0",
                    "tid": 0,
                    "feeToken": QUOTE,
                    "twapId": None,
                }
            )
        return out

    def settlement(self, coin: Coin, at: int) -> RawFill:
        """An outcome contract held at settlement, paid 1.0 if its side won, else 0.0."""
        pos = self.positions.setdefault(coin.name, Position())
        start = pos.size
        won = coin.encoding % 10 == outcome_winner(self.seed, at // DAY_MS)
        px = Decimal(1 if won else 0)
        closed = (px - pos.entry) * start
        self._apply(pos, coin, "A", start, px)
        return {
            "coin": coin.name,
            "px": fmt(px),
            "sz": fmt(start, coin.sz_places),
            "side": "A",
            "time": at,
            "startPosition": fmt(start, coin.sz_places),
            "dir": SETTLEMENT_DIR,
            "closedPnl": fmt(closed),
            "hash": ZERO_HASH,
            "oid": 0,
            "crossed": False,
            "fee": "0.0",
            "tid": self.next_id(),
            "feeToken": QUOTE,
            "twapId": None,
        }

    def _price(self, coin: Coin) -> Decimal:
        if coin.outcome:
            # Either side of an outcome trades anywhere strictly between 0 and 1.
            return Decimal(str(round(self.rng.uniform(0.02, 0.98), 3))).quantize(coin.tick)
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
        if coin.perp:
            direction, closed, sz = self._perp_direction(pos, side, sz, px)
        else:
            direction, closed = ("Buy" if side == "B" else "Sell"), _ZERO
            if side == "A" and start > 0:
                if coin.spot and tid is None and rng.random() < 0.25:
                    sz = start  # closing out the balance
                if sz >= start and coin.spot and tid is None and rng.random() < 0.3:
                    # Selling "everything" often leaves a little behind: dust.
                    sz = max(coin.lot, start - coin.lot * rng.randint(1, self._dust_lots(coin)))
                sz = min(sz, start)
                closed = (px - pos.entry) * sz
        notional = px * sz
        if crossed:
            rate = TAKER_SPOT if coin.spot else TAKER_PERP
        else:
            rate = REBATE if self.maker_rebates and rng.random() < 0.7 else MAKER
        builder_fee: Decimal | None = None
        deployer_fee: Decimal | None = None
        if coin.outcome:
            fee_token, fee = coin.quote, _ZERO  # no fees on outcome markets (yet)
        elif coin.spot and side == "B":
            # A spot buy pays its fee in the base token it receives.
            fee_token, fee = coin.base, (sz * rate).quantize(Decimal("0.00000001"))
        else:
            fee_token, fee = coin.quote, (notional * rate).quantize(Decimal("0.000001"))
            if coin.dex and fee > 0 and rng.random() < 0.6:
                deployer_fee = (fee * DEPLOYER_SHARE).quantize(Decimal("0.000001"))
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
            if coin.dex:
                raw["builder"] = BUILDER_ADDRESS
        if deployer_fee is not None:
            raw["deployerFee"] = fmt(deployer_fee)
        if rng.random() < 0.2:
            raw["cloid"] = "0x" + f"{rng.getrandbits(128):032x}"
        if extra:
            raw.update(extra)
        return raw

    @staticmethod
    def _dust_lots(coin: Coin) -> int:
        return max(1, min(5, int(DUST_VALUE / (coin.price * coin.lot)) - 1))

    def _perp_direction(
        self, pos: Position, side: str, sz: Decimal, px: Decimal
    ) -> tuple[str, Decimal, Decimal]:
        if side == "B" and pos.size < 0:
            if sz > -pos.size and self.rng.random() < 0.35:
                return "Short > Long", (pos.entry - px) * -pos.size, sz
            sz = min(sz, -pos.size)
            return "Close Short", (pos.entry - px) * sz, sz
        if side == "A" and pos.size > 0:
            if sz > pos.size and self.rng.random() < 0.35:
                return "Long > Short", (px - pos.entry) * pos.size, sz
            sz = min(sz, pos.size)
            return "Close Long", (px - pos.entry) * sz, sz
        return ("Open Long" if side == "B" else "Open Short"), _ZERO, sz

    @staticmethod
    def _apply(pos: Position, coin: Coin, side: str, sz: Decimal, px: Decimal) -> None:
        signed = sz if side == "B" else -sz
        new_size = pos.size + signed
        if not coin.perp:
            if side == "B" and new_size > 0:
                pos.entry = (pos.entry * max(pos.size, _ZERO) + px * sz) / new_size
            pos.size = max(new_size, _ZERO)
            if pos.size == 0:
                pos.entry = _ZERO
            return
        if new_size == 0:
            pos.entry = _ZERO
        elif pos.size == 0 or (pos.size > 0) == (signed > 0):
            pos.entry = (pos.entry * abs(pos.size) + px * sz) / abs(new_size)
        elif (pos.size > 0) != (new_size > 0):
            pos.entry = px  # flipped: the new side opened at this fill's price
        pos.size = new_size
