"""The simulated market: every wallet's fills, and the `/info` queries over them.

The market answers like Hyperliquid's API does (looked up in its docs, not
guessed): `userFillsByTime` returns at most 2000 fills, oldest first, from
`startTime` to `endTime` inclusive, and only a wallet's 10,000 most recent
fills are reachable at all; `userFills` returns the latest 2000, newest first.
Only fills at or before the market clock (`now_ms`) exist for clients.

`userFillsByTime` with a `dex` answers only the fills of that builder dex's
perps (coins `dex:…`); the 2000-fill page is counted after that filter.

Tests use the Python API to plant exact situations (`add_fill` on any coin,
`add_burst`, `add_dust` for a dust conversion, `add_raw` for malformed
fills) and to read the ground truth (`fills`). Listings and what each coin
is (kind, dex, base, quote) are in `hlsim.coins` (`BY_NAME[coin]`).
Methods are thread-safe: the server runs in another thread than the test.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hlsim import account, funding, ledger
from hlsim.coins import BY_NAME, DEX_BY_NAME, meta, perp_dexs, spot_meta
from hlsim.trader import DAY_MS, RawFill, Trader

PAGE_LIMIT = 2000
# `userFunding` answers at most this many entries, oldest first.
FUNDING_PAGE_LIMIT = 500
HORIZON = 10_000


@dataclass
class WalletBook:
    """One wallet's fills, sorted by time; equal times keep insertion order."""

    times: list[int] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)

    def add(self, time_ms: int, raw: Any) -> None:
        at = bisect.bisect_right(self.times, time_ms)
        self.times.insert(at, time_ms)
        self.items.insert(at, raw)

    def extend_sorted(self, fills: Iterable[RawFill]) -> None:
        for raw in fills:
            if self.times and raw["time"] < self.times[-1]:
                self.add(raw["time"], raw)
            else:
                self.times.append(raw["time"])
                self.items.append(raw)


def wallet_address(seed: int, index: int) -> str:
    return "0x" + hashlib.sha256(f"hlsim-wallet:{seed}:{index}".encode()).hexdigest()[:40]


class Market:
    """Deterministic from its seed: the same calls give byte-identical answers."""

    def __init__(self, seed: int = 1, *, now_ms: int) -> None:
        self.seed = seed
        self.now_ms = now_ms
        self._books: dict[str, WalletBook] = {}
        self._traders: list[Trader] = []
        self._planters: dict[str, Trader] = {}
        self._planted_funding: dict[str, list[tuple[int, Any]]] = {}
        # Funding paid up to a time is history: fills planted in the past later (a test's
        # "lost" fills) change the positions of hours to come, never a payment made.
        self._paid: dict[str, tuple[int, list[Any]]] = {}
        self._booked: dict[str, tuple[int, list[Any]]] = {}  # ledger updates, the same way
        self._planted_ledger: dict[str, list[tuple[int, Any]]] = {}
        self._next_index = 0
        self._lock = threading.RLock()

    @classmethod
    def generate(
        cls,
        seed: int = 1,
        *,
        wallets: int = 8,
        days: float = 3,
        now_ms: int,
        fills_per_day: tuple[float, float] = (10, 400),
    ) -> Market:
        """A market of `wallets` traders with `days` of history up to `now_ms`.

        Activity levels are spread log-uniformly over `fills_per_day`, so a few
        wallets are busy and most are quiet.
        """
        market = cls(seed, now_ms=now_ms)
        low, high = fills_per_day
        for index in range(wallets):
            share = index / max(wallets - 1, 1)
            rate = low * (high / low) ** share if low > 0 else high * share
            market.add_wallet(fills_per_day=rate, since_ms=now_ms - int(days * DAY_MS))
        return market

    # -- building ---------------------------------------------------------------

    def add_wallet(
        self, address: str | None = None, *, fills_per_day: float = 0, since_ms: int | None = None
    ) -> str:
        """A wallet trading `fills_per_day` from `since_ms` on (0: only planted fills)."""
        with self._lock:
            index = self._next_index
            self._next_index += 1
            address = (address or wallet_address(self.seed, index)).lower()
            self._books.setdefault(address, WalletBook())
            if fills_per_day > 0:
                start = self.now_ms if since_ms is None else since_ms
                trader = Trader(address, index, self.seed, fills_per_day, start)
                self._traders.append(trader)
                self._books[address].extend_sorted(trader.fills_until(self.now_ms))
            return address

    def add_fill(self, address: str, time_ms: int, **overrides: Any) -> RawFill:
        """Plants one well-formed fill at `time_ms`; `overrides` replace its fields."""
        with self._lock:
            trader = self._planter(address)
            coin = BY_NAME[str(overrides.pop("coin", "ETH"))]
            raw = trader.fill(coin, time_ms, str(overrides.pop("side", "B")), crossed=True)
            raw.update(overrides)
            self._books[address.lower()].add(time_ms, raw)
            return raw

    def add_burst(self, address: str, time_ms: int, count: int, coin: str = "BTC") -> list[RawFill]:
        """Plants one taker order swept through `count` makers in the same millisecond."""
        with self._lock:
            fills = self._planter(address).sweep(BY_NAME[coin], time_ms, count)
            book = self._books[address.lower()]
            for raw in fills:
                book.add(time_ms, raw)
            return fills

    def add_dust(
        self, address: str, time_ms: int, coins: list[str], sizes: list[Decimal] | None = None
    ) -> list[RawFill]:
        """Plants one dust conversion: a `Spot Dust Conversion` fill per spot coin, all at
        `time_ms`, each with tid 0, oid 0 and a zero hash; `sizes` default to one lot."""
        with self._lock:
            listed = [BY_NAME[coin] for coin in coins]
            if any(not coin.spot for coin in listed):
                raise ValueError(f"dust is converted from spot balances only, not {coins}")
            amounts = sizes if sizes is not None else [coin.lot for coin in listed]
            fills = self._planter(address).dust(listed, time_ms, amounts)
            book = self._books[address.lower()]
            for raw in fills:
                book.add(time_ms, raw)
            return fills

    def add_raw(self, address: str, time_ms: int, raw: Any) -> None:
        """Plants anything as a fill (for malformed ones); sorted at `time_ms`."""
        with self._lock:
            self._books.setdefault(address.lower(), WalletBook()).add(time_ms, raw)

    def _planter(self, address: str) -> Trader:
        # A separate generator per planted wallet, so planting never perturbs the traders' streams.
        key = address.lower()
        self._books.setdefault(key, WalletBook())
        if key not in self._planters:
            index = 1_000 + len(self._planters)
            self._planters[key] = Trader(key, index, self.seed, 1, self.now_ms)
        return self._planters[key]

    def advance(self, now_ms: int) -> int:
        """Moves the clock forward, letting every trader trade; returns the new fill count."""
        with self._lock:
            if now_ms <= self.now_ms:
                return 0
            self.now_ms = now_ms
            added = 0
            for trader in self._traders:
                fills = trader.fills_until(now_ms)
                self._books[trader.address].extend_sorted(fills)
                added += len(fills)
            return added

    # -- reading ----------------------------------------------------------------

    @property
    def wallets(self) -> list[str]:
        with self._lock:
            return list(self._books)

    def fills(self, address: str) -> list[Any]:
        """Ground truth: every fill of the wallet up to the clock, horizon ignored."""
        with self._lock:
            book = self._books.get(address.lower(), WalletBook())
            return book.items[: bisect.bisect_right(book.times, self.now_ms)]

    def fills_between(self, start_ms: int, end_ms: int) -> list[tuple[str, Any]]:
        """Every wallet's fills with `start_ms <= time < end_ms` (and at or before the
        clock), as (address, fill) in time order; wallets in address order within a
        millisecond. What a node writes for those blocks (hlsim.nodefiles)."""
        with self._lock:
            end_ms = min(end_ms, self.now_ms + 1)
            out: list[tuple[int, str, int, Any]] = []
            for address, book in self._books.items():
                lo = bisect.bisect_left(book.times, start_ms)
                hi = bisect.bisect_left(book.times, end_ms)
                for i in range(lo, hi):
                    out.append((book.times[i], address, i, book.items[i]))
            out.sort(key=lambda item: item[:3])
            return [(address, raw) for _, address, _, raw in out]

    def user_fills_by_time(
        self, address: str, start_ms: int, end_ms: int | None, dex: str | None = None
    ) -> list[Any]:
        """Oldest first, at most PAGE_LIMIT; with `dex`, only fills of that dex's perps."""
        with self._lock:
            book = self._books.get(address.lower(), WalletBook())
            visible = bisect.bisect_right(book.times, self.now_ms)
            reachable = max(0, visible - HORIZON)
            end = (
                visible if end_ms is None else min(visible, bisect.bisect_right(book.times, end_ms))
            )
            lo = max(reachable, bisect.bisect_left(book.times, start_ms))
            if not dex:
                return book.items[lo : min(end, lo + PAGE_LIMIT)]
            if dex not in DEX_BY_NAME:
                raise KeyError(dex)
            prefix = dex + ":"
            page: list[Any] = []
            for raw in book.items[lo:end]:
                coin = raw.get("coin") if isinstance(raw, dict) else None
                if isinstance(coin, str) and coin.startswith(prefix):
                    page.append(raw)
                    if len(page) == PAGE_LIMIT:
                        break
            return page

    def add_raw_funding(self, address: str, time_ms: int, raw: Any) -> None:
        """Plants anything as a `userFunding` entry at `time_ms` (for malformed ones)."""
        with self._lock:
            self._planted_funding.setdefault(address.lower(), []).append((time_ms, raw))

    def funding(self, address: str) -> list[Any]:
        """Ground truth: every funding entry of the wallet up to the clock, oldest first: the
        payments its positions earn (hlsim.funding) and any planted ones."""
        with self._lock:
            return [raw for _, raw in self._timed_funding(address)]

    def user_funding(self, address: str, start_ms: int, end_ms: int | None) -> list[Any]:
        """`userFunding`: oldest first, `startTime` to `endTime` inclusive, at most 500."""
        with self._lock:
            entries = self._timed_funding(address)
        end = self.now_ms if end_ms is None else end_ms
        page = [raw for t, raw in entries if start_ms <= t <= end]
        return page[:FUNDING_PAGE_LIMIT]

    def _earned(self, address: str) -> list[Any]:
        key = address.lower()
        until, paid = self._paid.get(key, (-1, []))
        if until < self.now_ms:
            later = funding.payments(self.seed, self.fills(key), self.now_ms)
            paid = paid + [e for e in later if e["time"] > until]
            self._paid[key] = (self.now_ms, paid)
        return paid

    def _timed_funding(self, address: str) -> list[tuple[int, Any]]:
        entries = [(e["time"], e) for e in self._earned(address)]
        planted = self._planted_funding.get(address.lower(), [])
        entries.extend((t, raw) for t, raw in planted if t <= self.now_ms)
        entries.sort(key=lambda item: item[0])
        return entries

    def clearinghouse_state(self, address: str, dex: str = "") -> dict[str, Any]:
        """`clearinghouseState` of one perp dex (hlsim.account); KeyError for an unknown dex."""
        if dex and dex not in DEX_BY_NAME:
            raise KeyError(dex)
        with self._lock:
            fills = self.fills(address)
            moved = ledger.perp_usdc(self._well_formed_ledger(address), address.lower())
            return account.clearinghouse_state(
                fills, self._earned(address), dex, self.now_ms, moved
            )

    def spot_clearinghouse_state(self, address: str) -> dict[str, Any]:
        with self._lock:
            moved = ledger.spot_changes(self._well_formed_ledger(address), address.lower())
            return account.spot_clearinghouse_state(self.fills(address), moved)

    def add_raw_ledger(self, address: str, time_ms: int, raw: Any) -> None:
        """Plants anything as a ledger update at `time_ms` (any type, malformed ones too)."""
        with self._lock:
            self._planted_ledger.setdefault(address.lower(), []).append((time_ms, raw))

    def ledger(self, address: str) -> list[Any]:
        """Ground truth: every non-funding ledger update of the wallet up to the clock,
        oldest first: those it books (hlsim.ledger) and any planted ones."""
        return [raw for _, raw in self._timed_ledger(address)]

    def _timed_ledger(self, address: str) -> list[tuple[int, Any]]:
        key = address.lower()
        with self._lock:
            until, booked = self._booked.get(key, (-1, []))
            if until < self.now_ms:
                times = [f["time"] for f in self.fills(key) if isinstance(f, dict)]
                first = min((t for t in times if isinstance(t, int)), default=None)
                later = ledger.updates(self.seed, key, first, self.now_ms)
                booked = booked + [e for e in later if e["time"] > until]
                self._booked[key] = (self.now_ms, booked)
            entries = [(e["time"], e) for e in booked]
            planted = self._planted_ledger.get(key, [])
            entries.extend((t, raw) for t, raw in planted if t <= self.now_ms)
            entries.sort(key=lambda item: item[0])
            return entries

    def _well_formed_ledger(self, address: str) -> list[Any]:
        """The ledger updates an account state can follow (planted malformed ones left out)."""
        return [e for e in self.ledger(address) if ledger.well_formed(e)]

    def user_non_funding_ledger_updates(
        self, address: str, start_ms: int, end_ms: int | None
    ) -> list[Any]:
        """Oldest first, `startTime` to `endTime` inclusive, at most 500 a page."""
        end = self.now_ms if end_ms is None else end_ms
        page = [e for t, e in self._timed_ledger(address) if start_ms <= t <= end]
        return page[:FUNDING_PAGE_LIMIT]

    def user_fills(self, address: str) -> list[Any]:
        with self._lock:
            book = self._books.get(address.lower(), WalletBook())
            visible = bisect.bisect_right(book.times, self.now_ms)
            return book.items[max(0, visible - PAGE_LIMIT) : visible][::-1]

    @staticmethod
    def spot_meta() -> dict[str, object]:
        return spot_meta()

    @staticmethod
    def perp_dexs() -> list[dict[str, object] | None]:
        return perp_dexs()

    @staticmethod
    def meta(dex: str = "") -> dict[str, object]:
        """KeyError for a dex that is not listed."""
        return meta(dex)
