"""Which token each coin is quoted in, from Hyperliquid's metadata, cached per process.

Hyperliquid's info endpoint documents what is needed (and the rules are in
storage.markets and storage.rollups):

- spot: `spotMeta` answers `tokens` (each with its `index`) and `universe`, whose
  entries name a pair (`PURR/USDC`, or `@N` where N is the entry's `index`, not a
  token index) and give `tokens: [base, quote]` as token indices;
- default-dex perps and outcome markets (`#N`, HIP-4) are quoted in USDC;
- builder-deployed perps (HIP-3, `dex:COIN`): `meta` with `{"dex": name}`
  answers `collateralToken`, the spot-token index of the dex's collateral, which
  is the quote; `perpDexs` lists the dexes (`null` first, for the default dex).

Every request goes through the Hyperliquid client, so through the shared rate
budget and its retries. Answers are cached for the process and asked again only
for a coin they do not know, at most every `refresh_after_s`. A coin metadata
cannot resolve, or a request that fails after its retries, never stops fills
from being stored: the coin stays unresolved (its amounts unpriced), is logged
once, and the scheduler's `resolve_markets` job tries again later, then has
the days of its fills rolled up again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from jobs.errors import HyperliquidRejected, HyperliquidUnavailable
from storage import markets
from storage.errors import first_line
from storage.markets import Resolution, dex_of, market_kind, static_resolution

log = logging.getLogger(__name__)

REFRESH_AFTER_S = 60.0


class MetadataSource(Protocol):
    async def info(self, body: dict[str, Any], *, expect: type = list) -> Any: ...


@dataclass(frozen=True)
class MarketPlan:
    """What metadata said of some coins: resolved ones, and those it could not resolve."""

    resolved: list[Resolution]
    failed: list[str]
    error: str = ""


# Called in the transaction that resolved coins whose fills were stored before.
Repriced = Callable[[psycopg.Connection, list[str]], None]


@dataclass
class _Snapshot:
    value: Any
    fetched_at: float


@dataclass
class MarketCatalog:
    """Metadata answers and the coins known resolved, shared by a process's jobs."""

    refresh_after_s: float = REFRESH_AFTER_S
    _known: set[str] | None = None
    _spot: _Snapshot | None = None
    _dexes: _Snapshot | None = None
    _collateral: dict[str, _Snapshot] = field(default_factory=dict)
    _logged: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def unknown(self, conn: psycopg.Connection, coins: Iterable[str]) -> list[str]:
        """The coins not yet resolved in the database (read once per process, then kept)."""
        with self._lock:
            if self._known is None:
                self._known = markets.resolved_coins(conn)
            return sorted(set(coins) - self._known)

    async def plan(self, source: MetadataSource, coins: Sequence[str]) -> MarketPlan:
        """Resolves `coins` from metadata (fetched as the module docstring says)."""
        resolved: list[Resolution] = []
        failed: list[str] = []
        errors: list[str] = []
        for coin in coins:
            try:
                found = await self._resolve(source, coin)
            except (HyperliquidUnavailable, HyperliquidRejected) as exc:
                found, reason = None, first_line(exc)
            else:
                reason = "unknown to Hyperliquid's metadata"
            if found is None:
                failed.append(coin)
                errors.append(f"{coin}: {reason}")
                self._log_once(coin, reason)
            else:
                resolved.append(found)
        return MarketPlan(resolved, failed, "; ".join(errors)[:2000])

    def store(
        self, conn: psycopg.Connection, plan: MarketPlan, *, on_repriced: Repriced
    ) -> list[str]:
        """Records and resolves the plan's coins in the caller's transaction; coins whose
        stored fills are priced differently now are passed to `on_repriced`. The caller
        passes the plan to `remember` once that transaction has committed."""
        coins = [r.coin for r in plan.resolved] + plan.failed
        fresh = set(markets.record(conn, coins))
        changed = markets.resolve(conn, plan.resolved)
        markets.mark_failed(conn, plan.failed, plan.error)
        # A coin recorded just now has no stored fill to price again.
        repriced = [coin for coin in changed if coin not in fresh]
        if repriced:
            on_repriced(conn, repriced)
        return repriced

    def remember(self, plan: MarketPlan) -> None:
        """The plan's resolutions committed: later pages need not ask for those coins.
        Learning them in `store`, before the commit, let a rolled-back page (the
        database lost mid-transaction) leave its coins unresolved and unpriced on the
        retry, which took them for resolved."""
        with self._lock:
            if self._known is not None:
                self._known.update(r.coin for r in plan.resolved)

    async def dex_names(self, source: MetadataSource) -> list[str]:
        """Every builder-deployed perp dex `perpDexs` lists (the first entry, null, is the
        default dex)."""
        snapshot = self._dexes
        if snapshot is None or self._stale(snapshot):
            answer = await source.info({"type": "perpDexs"}, expect=list)
            names = [d["name"] for d in answer if isinstance(d, dict) and d.get("name")]
            snapshot = self._dexes = _Snapshot(names, time.monotonic())
        return list(snapshot.value)

    # -- resolving one coin ---------------------------------------------------------

    async def _resolve(self, source: MetadataSource, coin: str) -> Resolution | None:
        static = static_resolution(coin)
        if static is not None:
            return static
        if market_kind(coin) == "perp":
            dex = dex_of(coin)
            assert dex is not None  # a default-dex perp resolves statically
            quote = await self._collateral_of(source, dex)
            base = coin.split(":", 1)[1]
            return Resolution(coin, base, quote, coin) if quote else None
        pair = await self._spot_pair(source, coin)
        if pair is None:
            return None
        base, quote = pair
        return Resolution(coin, base, quote, f"{base}/{quote}")

    async def _spot_pair(self, source: MetadataSource, coin: str) -> tuple[str, str] | None:
        pairs, _ = await self._spot_meta(source, refresh_for=coin)
        pair: tuple[str, str] | None = pairs.get(coin)
        return pair

    async def _spot_meta(
        self, source: MetadataSource, *, refresh_for: str | None = None
    ) -> tuple[dict[str, tuple[str, str]], dict[int, str]]:
        """(coin → (base, quote) token names, token index → name), from `spotMeta`."""
        snapshot = self._spot
        missing = snapshot is None or (
            refresh_for is not None
            and refresh_for not in snapshot.value[0]
            and self._stale(snapshot)
        )
        if missing:
            meta = await source.info({"type": "spotMeta"}, expect=dict)
            snapshot = self._spot = _Snapshot(_spot_tables(meta), time.monotonic())
        assert snapshot is not None
        tables: tuple[dict[str, tuple[str, str]], dict[int, str]] = snapshot.value
        return tables

    async def _collateral_of(self, source: MetadataSource, dex: str) -> str | None:
        snapshot = self._collateral.get(dex)
        if snapshot is None or (snapshot.value is None and self._stale(snapshot)):
            meta = await source.info({"type": "meta", "dex": dex}, expect=dict)
            index = meta.get("collateralToken")
            _, tokens = await self._spot_meta(source)
            name = tokens.get(index) if isinstance(index, int) else None
            if name is None and isinstance(index, int):
                _, tokens = await self._spot_meta(source, refresh_for=f"token {index}")
                name = tokens.get(index)
            snapshot = self._collateral[dex] = _Snapshot(name, time.monotonic())
        value: str | None = snapshot.value
        return value

    def _stale(self, snapshot: _Snapshot) -> bool:
        return time.monotonic() - snapshot.fetched_at >= self.refresh_after_s

    def _log_once(self, coin: str, reason: str) -> None:
        if coin in self._logged:
            return
        self._logged.add(coin)
        log.warning(
            "cannot tell what %s is quoted in (%s); its fills are stored and left unpriced "
            "until metadata resolves it",
            coin,
            reason,
            extra={"action": "market_unresolved", "coin": coin, "reason": reason},
        )


def _spot_tables(meta: Any) -> tuple[dict[str, tuple[str, str]], dict[int, str]]:
    tokens: dict[int, str] = {}
    for token in meta.get("tokens", []) if isinstance(meta, dict) else []:
        if isinstance(token, dict) and isinstance(token.get("index"), int):
            tokens[token["index"]] = str(token.get("name"))
    pairs: dict[str, tuple[str, str]] = {}
    for pair in meta.get("universe", []) if isinstance(meta, dict) else []:
        if not isinstance(pair, dict):
            continue
        indices = pair.get("tokens")
        if not (isinstance(indices, list) and len(indices) == 2):
            continue
        base, quote = tokens.get(indices[0]), tokens.get(indices[1])
        if base is None or quote is None:
            continue
        # Fills name a pair `PURR/USDC` (its `name`) or `@N` (N = its `index`).
        if isinstance(pair.get("name"), str):
            pairs[pair["name"]] = (base, quote)
        if isinstance(pair.get("index"), int):
            pairs[f"@{pair['index']}"] = (base, quote)
    return pairs, tokens


@dataclass(frozen=True)
class CoinResolver:
    """The catalog, a metadata source and what to do when stored fills are repriced:
    what an ingest or a `resolve_markets` job needs to resolve the coins it meets."""

    catalog: MarketCatalog
    source: MetadataSource
    on_repriced: Repriced

    async def plan_for(self, conn: psycopg.Connection, coins: Iterable[str]) -> MarketPlan | None:
        """Metadata for the coins not resolved yet (None: all are); `conn` in autocommit."""
        unknown = self.catalog.unknown(conn, coins)
        return await self.catalog.plan(self.source, unknown) if unknown else None

    def store(self, conn: psycopg.Connection, plan: MarketPlan | None) -> list[str]:
        """Stores a plan in the caller's transaction; returns the coins repriced. Pass
        the plan to `remember` once that transaction committed."""
        if plan is None:
            return []
        return self.catalog.store(conn, plan, on_repriced=self.on_repriced)

    def remember(self, plan: MarketPlan | None) -> None:
        if plan is not None:
            self.catalog.remember(plan)
