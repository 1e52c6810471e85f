"""Funding payments of the simulated market, derived from each wallet's own fills.

Hyperliquid settles perp funding every hour on the hour: a position of signed
size `szi` pays `szi × markPx × fundingRate` (a long pays when the rate is
positive, a short receives). `userFunding` reports one entry per coin and
hour, `{time, hash, delta: {type: "funding", coin, usdc, szi, fundingRate,
nSamples}}`, with a zero hash; `usdc` is signed from the wallet's side
(negative = paid). HIP-3 perps settle in their dex's collateral; the field is
still called `usdc`.

Here the position held at an hour is what the wallet's fills before that hour
left it with (`startPosition` plus the last fill's signed size), so funding
follows every fill, planted ones included; the rate of a coin and hour is
drawn from the market seed, the mark price is the coin's listed price. A
liquidation closes the position like any fill, and funding stops with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from hlsim.coins import BY_NAME
from hlsim.trader import ZERO_HASH, fmt

HOUR_MS = 3_600_000
RawFunding = dict[str, Any]
_RATE_STEPS = 2001  # rates from -0.0001 to +0.0001 in steps of 1e-7


def funding_rate(seed: int, coin: str, hour_ms: int) -> Decimal:
    """The coin's rate for the hour: the same for every wallet of the market."""
    digest = hashlib.sha256(f"hlsim-funding:{seed}:{coin}:{hour_ms}".encode()).digest()
    step = int.from_bytes(digest[:4], "big") % _RATE_STEPS
    return Decimal(step - _RATE_STEPS // 2) * Decimal("0.0000001")


def _position_after(raw: Any) -> tuple[str, Decimal, int] | None:
    """(coin, signed size after the fill, time) of a well-formed perp fill, else None."""
    if not isinstance(raw, dict):
        return None
    coin = BY_NAME.get(str(raw.get("coin")))
    if coin is None or not coin.perp or not isinstance(raw.get("time"), int):
        return None
    try:
        start, size = Decimal(str(raw["startPosition"])), Decimal(str(raw["sz"]))
    except (KeyError, InvalidOperation):
        return None
    signed = size if raw.get("side") == "B" else -size
    return coin.name, start + signed, int(raw["time"])


def payments(seed: int, fills: Iterable[Any], now_ms: int) -> list[RawFunding]:
    """Every funding entry of a wallet with these fills (oldest first), up to `now_ms`."""
    held: dict[str, Decimal] = {}
    out: list[RawFunding] = []
    hour: int | None = None

    def settle(until_ms: int) -> None:
        nonlocal hour
        assert hour is not None
        while hour <= until_ms:
            for name in sorted(held):
                szi = held[name]
                if szi == 0:
                    continue
                coin = BY_NAME[name]
                rate = funding_rate(seed, name, hour)
                usdc = (-szi * coin.price * rate).quantize(Decimal("0.000001"))
                out.append(
                    {
                        "time": hour,
                        "hash": ZERO_HASH,
                        "delta": {
                            "type": "funding",
                            "coin": name,
                            "usdc": fmt(usdc),
                            "szi": fmt(szi, coin.sz_places),
                            "fundingRate": format(rate, "f"),
                            "nSamples": None,
                        },
                    }
                )
            hour += HOUR_MS

    for raw in fills:
        after = _position_after(raw)
        if after is None:
            continue
        name, size, time_ms = after
        if hour is None:
            hour = (time_ms // HOUR_MS + 1) * HOUR_MS
        # Funding at an hour counts the position before that millisecond's fills.
        settle(time_ms)
        held[name] = size
    if hour is not None:
        settle(now_ms)
    return out
