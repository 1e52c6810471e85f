"""What each coin trades against (`hl_markets`): market kind, dex, base and quote token.

Kind and dex follow the coin's spelling, always (`market_kind`, `dex_of`, which
`hl_fills_raw`'s generated columns of migration 0010 mirror): `@N` or
`BASE/QUOTE` is spot, `#N` an outcome market (HIP-4), every other coin a perp,
whose dex is the part before a colon (HIP-3 `dex:COIN`; None for the default
dex). The quote token needs Hyperliquid's metadata, which the workers fetch
(`jobs.markets`): a row whose `resolved_at` is NULL has not been resolved yet
and its coin's amounts are unpriced until it is.

A coin is recorded the first time a fill of it is stored (`record`), resolved
when metadata answers (`resolve`), and an unresolved coin is retried at most
every `RETRY_AFTER` (`due_unresolved`). Pricing itself happens in SQL
(`storage.rollups`), joined on the coin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import psycopg

RETRY_AFTER = timedelta(minutes=10)
KINDS = ("perp", "spot", "outcome")


def market_kind(coin: str) -> str:
    """`spot`, `outcome` or `perp`, from the coin's spelling alone."""
    if coin.startswith("@") or "/" in coin:
        return "spot"
    if coin.startswith("#"):
        return "outcome"
    return "perp"


def dex_of(coin: str) -> str | None:
    """The builder-deployed dex of a HIP-3 perp (`xyz` of `xyz:TSLA`); None otherwise."""
    if market_kind(coin) == "perp" and ":" in coin:
        return coin.split(":", 1)[0]
    return None


@dataclass(frozen=True)
class Resolution:
    """What metadata says of a coin; `quote_token` None when it does not know the coin."""

    coin: str
    base_token: str | None
    quote_token: str | None
    display_name: str


def static_resolution(coin: str) -> Resolution | None:
    """What a coin trades against when its spelling says it without metadata: default-dex
    perps and outcome markets are quoted in USDC (an outcome trades its side token
    `+<encoding>`, `#10` → `+10`). None for spot pairs and HIP-3 perps."""
    kind = market_kind(coin)
    if kind == "outcome":
        return Resolution(coin, "+" + coin[1:], "USDC", coin)
    if kind == "perp" and dex_of(coin) is None:
        return Resolution(coin, coin, "USDC", coin)
    return None


@dataclass(frozen=True)
class Market:
    coin: str
    market: str
    dex: str | None
    base_token: str | None
    quote_token: str | None
    display_name: str
    resolved: bool


# New coins; those quoted in USDC by their spelling alone are resolved at once.
RECORD = """
INSERT INTO hl_markets (coin, market, dex, base_token, quote_token, display_name, resolved_at,
                        checked_at)
SELECT c.coin, c.market, c.dex, c.base, c.quote, c.coin,
       CASE WHEN c.quote IS NOT NULL THEN now() END, CASE WHEN c.quote IS NOT NULL THEN now() END
FROM unnest(%(coins)s::text[], %(markets)s::text[], %(dexes)s::text[], %(bases)s::text[],
            %(quotes)s::text[]) AS c(coin, market, dex, base, quote)
ON CONFLICT (coin) DO NOTHING
RETURNING coin
"""
SELECT_MARKETS = """
SELECT coin, market, dex, base_token, quote_token, display_name, resolved_at IS NOT NULL
FROM hl_markets WHERE coin = ANY(%s) ORDER BY coin
"""
SELECT_RESOLVED_COINS = "SELECT coin FROM hl_markets WHERE resolved_at IS NOT NULL"
# Unresolved coins not tried within `retry_after`, oldest try first.
SELECT_DUE_UNRESOLVED = """
SELECT coin FROM hl_markets
WHERE resolved_at IS NULL AND (checked_at IS NULL OR checked_at < now() - %(retry_after)s)
ORDER BY checked_at NULLS FIRST, coin
LIMIT %(limit)s
"""
# Stores what metadata said; returns the coins whose pricing changed (their fills'
# days must be rolled up again).
RESOLVE = """
WITH given AS (
    SELECT * FROM unnest(%(coins)s::text[], %(bases)s::text[], %(quotes)s::text[],
                         %(names)s::text[]) AS g(coin, base_token, quote_token, display_name)
),
before AS (
    SELECT m.coin, m.base_token, m.quote_token FROM hl_markets m JOIN given USING (coin)
    FOR UPDATE OF m
)
UPDATE hl_markets m SET
    base_token = g.base_token,
    quote_token = g.quote_token,
    display_name = g.display_name,
    resolved_at = now(),
    checked_at = now(),
    last_error = NULL
FROM given g JOIN before b USING (coin)
WHERE m.coin = g.coin
RETURNING m.coin, (b.base_token IS DISTINCT FROM g.base_token
                   OR b.quote_token IS DISTINCT FROM g.quote_token)
"""
MARK_FAILED = """
UPDATE hl_markets SET checked_at = now(), last_error = %(error)s WHERE coin = ANY(%(coins)s)
"""
MARK_CHECKED = "UPDATE hl_markets SET checked_at = now() WHERE coin = ANY(%s)"
COUNT_UNRESOLVED = "SELECT count(*) FROM hl_markets WHERE quote_token IS NULL"


def record(conn: psycopg.Connection, coins: Iterable[str]) -> list[str]:
    """Records coins seen in fills (kind and dex from their spelling; those whose quote
    the spelling tells resolved at once, the others not yet); returns the new ones."""
    distinct = sorted(set(coins))
    if not distinct:
        return []
    static = [static_resolution(c) for c in distinct]
    rows = conn.execute(
        RECORD,
        {
            "coins": distinct,
            "markets": [market_kind(c) for c in distinct],
            "dexes": [dex_of(c) for c in distinct],
            "bases": [r.base_token if r else None for r in static],
            "quotes": [r.quote_token if r else None for r in static],
        },
    )
    return [row[0] for row in rows]


def markets(conn: psycopg.Connection, coins: Iterable[str]) -> list[Market]:
    return [Market(*row) for row in conn.execute(SELECT_MARKETS, (sorted(set(coins)),))]


def resolved_coins(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute(SELECT_RESOLVED_COINS)}


def due_unresolved(
    conn: psycopg.Connection, *, limit: int = 500, retry_after: timedelta = RETRY_AFTER
) -> list[str]:
    rows = conn.execute(SELECT_DUE_UNRESOLVED, {"retry_after": retry_after, "limit": limit})
    return [row[0] for row in rows]


def resolve(conn: psycopg.Connection, resolutions: Sequence[Resolution]) -> list[str]:
    """Stores what metadata said of recorded coins; returns those whose pricing changed."""
    if not resolutions:
        return []
    params = {
        "coins": [r.coin for r in resolutions],
        "bases": [r.base_token for r in resolutions],
        "quotes": [r.quote_token for r in resolutions],
        "names": [r.display_name for r in resolutions],
    }
    return sorted(coin for coin, changed in conn.execute(RESOLVE, params) if changed)


def mark_failed(conn: psycopg.Connection, coins: Sequence[str], error: str) -> None:
    """Metadata could not be had for these coins now; they are retried after RETRY_AFTER."""
    if coins:
        conn.execute(MARK_FAILED, {"coins": list(coins), "error": error[:2000]})


def mark_checked(conn: psycopg.Connection, coins: Sequence[str]) -> None:
    """A resolution of these coins was queued now: not due again before RETRY_AFTER."""
    if coins:
        conn.execute(MARK_CHECKED, (list(coins),))


def unresolved_count(conn: psycopg.Connection) -> int:
    row = conn.execute(COUNT_UNRESOLVED).fetchone()
    return int(row[0]) if row else 0
