"""The simulated exchange's listings: perps, spot pairs and the `spotMeta` answer.

Spot pairs are named the way Hyperliquid names them in fills: the canonical
pair is `PURR/USDC`, every other pair `@N` where N is its index in
`spotMeta.universe`. The builder-deployed perp `xyz:TSLA` lives on dex `xyz`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

QUOTE = "USDC"


@dataclass(frozen=True)
class Coin:
    name: str  # as it appears in a fill's `coin`
    base: str  # the token bought or sold
    price: Decimal  # typical price, in USDC
    px_places: int
    sz_places: int
    spot: bool

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.px_places)

    @property
    def lot(self) -> Decimal:
        return Decimal(1).scaleb(-self.sz_places)


PERPS: tuple[Coin, ...] = (
    Coin("BTC", "BTC", Decimal("64000"), 0, 5, False),
    Coin("ETH", "ETH", Decimal("3100"), 1, 4, False),
    Coin("SOL", "SOL", Decimal("145"), 2, 2, False),
    Coin("HYPE", "HYPE", Decimal("24"), 3, 2, False),
    Coin("xyz:TSLA", "TSLA", Decimal("250"), 2, 3, False),
)

# (token, index in spotMeta.tokens, szDecimals, weiDecimals)
_TOKENS: tuple[tuple[str, int, int, int], ...] = (
    (QUOTE, 0, 8, 8),
    ("PURR", 1, 0, 5),
    ("HFUN", 2, 2, 8),
    ("JEFF", 3, 0, 5),
)

SPOT: tuple[Coin, ...] = (
    Coin("PURR/USDC", "PURR", Decimal("0.21"), 5, 0, True),
    Coin("@1", "HFUN", Decimal("31"), 3, 2, True),
    Coin("@2", "JEFF", Decimal("1.7"), 4, 0, True),
)

COINS: tuple[Coin, ...] = PERPS + SPOT
BY_NAME = {coin.name: coin for coin in COINS}


def spot_meta() -> dict[str, object]:
    """The `spotMeta` answer: every token, and every pair with its token indices."""
    token_index = {name: index for name, index, _, _ in _TOKENS}
    tokens = [
        {
            "name": name,
            "szDecimals": sz_dec,
            "weiDecimals": wei_dec,
            "index": index,
            "tokenId": "0x" + f"{index + 1:032x}",
            "isCanonical": index <= 1,
            "evmContract": None,
            "fullName": None,
        }
        for name, index, sz_dec, wei_dec in _TOKENS
    ]
    universe = [
        {
            "tokens": [token_index[coin.base], token_index[QUOTE]],
            "name": coin.name,
            "index": index,
            "isCanonical": index == 0,
        }
        for index, coin in enumerate(SPOT)
    ]
    return {"universe": universe, "tokens": tokens}
