"""The simulated exchange's listings and the metadata answers built from them.

Every market kind of Hyperliquid, named the way fills name them:

- default-dex perps (`BTC`), quoted and settled in USDC;
- builder-deployed (HIP-3) perps `dex:COIN` on dex `xyz`, whose collateral is
  the spot token USDH, so their fees are paid in USDH;
- spot pairs: the canonical `PURR/USDC` and every other pair `@N`, N being the
  pair's `index` in `spotMeta.universe` (a pair index, not a token index),
  including a pair quoted in USDT0 and one quoted in a non-stable token (PURR);
- HIP-4 outcome markets `#<encoding>`, encoding = 10 * outcome + side.

`BY_NAME[coin]` gives a fill's coin its kind, dex, base and quote, so a test
oracle can tell what a fill is without parsing names. `spot_meta()`,
`perp_dexs()` and `meta(dex)` are the `/info` answers of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

QUOTE = "USDC"  # the default dex's collateral and the quote of most spot pairs

Kind = Literal["perp", "spot", "outcome"]
PERP: Kind = "perp"
SPOT_KIND: Kind = "spot"
OUTCOME: Kind = "outcome"


@dataclass(frozen=True)
class Coin:
    name: str  # as it appears in a fill's `coin`
    base: str  # the token or contract bought or sold
    price: Decimal  # typical price, in `quote`
    px_places: int
    sz_places: int
    kind: Kind
    quote: str = QUOTE  # the collateral (perps) or quote token (spot, outcomes)
    dex: str | None = None  # the builder dex of a HIP-3 perp; None on the default dex
    max_leverage: int = 0  # perps only

    @property
    def spot(self) -> bool:
        return self.kind == SPOT_KIND

    @property
    def perp(self) -> bool:
        return self.kind == PERP

    @property
    def outcome(self) -> bool:
        return self.kind == OUTCOME

    @property
    def encoding(self) -> int:
        """An outcome coin's `10 * outcome + side`."""
        return int(self.name[1:])

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.px_places)

    @property
    def lot(self) -> Decimal:
        return Decimal(1).scaleb(-self.sz_places)


@dataclass(frozen=True)
class Token:
    """A spot token of `spotMeta.tokens`."""

    name: str
    index: int
    sz_decimals: int
    wei_decimals: int
    canonical: bool
    full_name: str | None = None


@dataclass(frozen=True)
class Dex:
    """A builder-deployed perp dex of `perpDexs`."""

    name: str
    full_name: str
    deployer: str
    collateral: str  # the spot token its perps are margined and settled in


TOKENS: tuple[Token, ...] = (
    Token("USDC", 0, 8, 8, True),
    Token("PURR", 1, 0, 5, True, "Purr"),
    Token("HFUN", 2, 2, 8, False, "Hypurr Fun"),
    Token("JEFF", 3, 0, 5, False),
    Token("HYPE", 4, 2, 8, False, "Hyperliquid"),
    Token("USDT0", 5, 2, 8, False, "Tether USD"),
    Token("USDH", 6, 2, 8, False, "USDH"),
)
TOKEN_INDEX = {token.name: token.index for token in TOKENS}

DEXS: tuple[Dex, ...] = (Dex("xyz", "XYZ", "0x88806a71d74ad0a510b350545c9ae490912f0888", "USDH"),)
DEX_BY_NAME = {dex.name: dex for dex in DEXS}

DEFAULT_PERPS: tuple[Coin, ...] = (
    Coin("BTC", "BTC", Decimal("64000"), 0, 5, PERP, max_leverage=40),
    Coin("ETH", "ETH", Decimal("3100"), 1, 4, PERP, max_leverage=25),
    Coin("SOL", "SOL", Decimal("145"), 2, 2, PERP, max_leverage=20),
    Coin("HYPE", "HYPE", Decimal("24"), 3, 2, PERP, max_leverage=10),
)
HIP3_PERPS: tuple[Coin, ...] = (
    Coin("xyz:TSLA", "TSLA", Decimal("250"), 2, 3, PERP, "USDH", "xyz", 10),
    Coin("xyz:NVDA", "NVDA", Decimal("180"), 2, 3, PERP, "USDH", "xyz", 10),
)
PERPS: tuple[Coin, ...] = DEFAULT_PERPS + HIP3_PERPS

# In `spotMeta.universe` order: the position is the pair's index, `@N`'s N.
SPOT: tuple[Coin, ...] = (
    Coin("PURR/USDC", "PURR", Decimal("0.21"), 5, 0, SPOT_KIND),
    Coin("@1", "HFUN", Decimal("31"), 3, 2, SPOT_KIND),
    Coin("@2", "JEFF", Decimal("1.7"), 4, 0, SPOT_KIND),
    Coin("@3", "HYPE", Decimal("24"), 3, 2, SPOT_KIND, "USDT0"),
    Coin("@4", "JEFF", Decimal("8.1"), 3, 0, SPOT_KIND, "PURR"),  # priced in PURR
)
USDC_SPOT: tuple[Coin, ...] = tuple(c for c in SPOT if c.quote == QUOTE)

# Outcome 1, sides 0 and 1: contracts paying 1 USDC if their side wins, priced in (0, 1).
OUTCOMES: tuple[Coin, ...] = (
    Coin("#10", "#10", Decimal("0.5"), 3, 0, OUTCOME),
    Coin("#11", "#11", Decimal("0.5"), 3, 0, OUTCOME),
)

COINS: tuple[Coin, ...] = PERPS + SPOT + OUTCOMES
BY_NAME = {coin.name: coin for coin in COINS}


def spot_meta() -> dict[str, object]:
    """The `spotMeta` answer: every token, and every pair with its token indices."""
    tokens = [
        {
            "name": token.name,
            "szDecimals": token.sz_decimals,
            "weiDecimals": token.wei_decimals,
            "index": token.index,
            "tokenId": "0x" + f"{token.index + 1:032x}",
            "isCanonical": token.canonical,
            "evmContract": None,
            "fullName": token.full_name,
        }
        for token in TOKENS
    ]
    universe = [
        {
            "tokens": [TOKEN_INDEX[coin.base], TOKEN_INDEX[coin.quote]],
            "name": coin.name,
            "index": index,
            "isCanonical": index == 0,
        }
        for index, coin in enumerate(SPOT)
    ]
    return {"universe": universe, "tokens": tokens}


def perp_dexs() -> list[dict[str, object] | None]:
    """The `perpDexs` answer: `null` for the default dex, then every builder dex."""
    return [None] + [
        {
            "name": dex.name,
            "fullName": dex.full_name,
            "deployer": dex.deployer,
            "oracleUpdater": None,
            "feeRecipient": None,
            "assetToStreamingOiCap": [],
            "assetToFundingMultiplier": [],
        }
        for dex in DEXS
    ]


def meta(dex: str = "") -> dict[str, object]:
    """The `meta` answer of one perp dex ("" the default); KeyError for an unknown dex."""
    collateral = QUOTE if dex == "" else DEX_BY_NAME[dex].collateral
    universe = [
        {"name": coin.name, "szDecimals": coin.sz_places, "maxLeverage": coin.max_leverage}
        for coin in PERPS
        if (coin.dex or "") == dex
    ]
    return {"universe": universe, "marginTables": [], "collateralToken": TOKEN_INDEX[collateral]}
