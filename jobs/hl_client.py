"""An async client of Hyperliquid's `POST /info`, built on httpx.

httpx (the project's HTTP client) gives connection pooling, async I/O and a
timeout for each phase of a request (connect, write, read, pool), all set here.

What it relies on, from Hyperliquid's API docs: `userFillsByTime` answers at
most 2000 fills, oldest first, from `startTime` to `endTime` (epoch ms), and
only a wallet's 10,000 most recent fills are reachable at all; each request
weighs 20 plus 1 per 20 fills returned, against 1200 a minute per IP.

Paging without gaps: many fills share one millisecond (a sweep through the
book), so the next page starts at the last fill's time *inclusive* and drops
fills already delivered in this pass by their identity (tid, oid, time, coin:
`storage.fills.identity`); `last + 1` would lose the
rest of a millisecond cut by the page boundary.

A page shorter than 2000 fills is not necessarily the end. The docs'
pagination note says time-range answers hold "500 elements or distinct blocks
of data" and are paged "using the last returned timestamp as the next
startTime", so a page of 500 fills or more may have been cut anywhere, even
inside a millisecond. Such a page is followed by another request from its last
fill's time, until a page of fewer than 500 fills (or an empty one) shows the
data ended: only that answer lets the pass claim time up to the exchange's
clock. Every earlier page claims only time below its last fill, which it has
seen whole. A page of fewer than 500 fills cannot have been cut: 500 elements
is the smallest cut the docs allow, and 500 distinct blocks hold at least 500
fills.

Why this rather than re-asking after every page until one brings nothing new,
or ending each pass at its last fill's time: measured on the simulated demo
market (30 wallets, a week of history, every page of 500 fills or more cut at
a random length of 500-2000), a first backfill took 64 requests (3,126 weight)
for 37,233 fills, and an hour of one-minute polls with the 10-minute overlap
made 1,800 passes in 1,800 requests (36,044 weight). Re-asking after every page
that brought anything would have added 537 requests (one per pass that re-read
any fill of the overlap: +29% weight, at 20 weight each), since an overlap
re-read is a page like any other. Ending a pass
at its last fill's time costs no request but leaves every cut pass unfinished
until the next scheduled one: a first backfill of 10,000 fills cut at 500 would
need 20 scheduled passes, and `sync --wait` would return while fills are still
missing. Re-asking only after a page that may have been cut costs one request
(20 weight plus the re-read last millisecond's few fills) per cut page, and
nothing on ordinary polls.

A page of 500 fills or more that all share the millisecond it started at cannot
be paged into (the API takes no finer cursor than a millisecond) and may have
been cut: the pass steps past that millisecond, logs it, and marks the page
truncated, since some of its fills may be out of reach.

Funding payments (`userFunding`, at most 500 entries a page, weighing 20 plus
1 per 20 entries like fills) are paged by the same pass (`_paged`): a page of
500 may have been cut, so it is followed from its last entry's time and the
entries already delivered are dropped by their identity (time, coin); there is
no 10,000 horizon. Non-funding ledger updates (`userNonFundingLedgerUpdates`)
are paged the same way; their identity is (time, hash) and, where the hash is
zero, the update's own fields (storage.ledger).

A pass covers `[start_ms, end_ms]`, or up to the exchange's "now" without
`end_ms` (no `endTime` is sent; the API defaults it to now). The final page is
complete up to `end_ms` or to the exchange's clock, whichever is earlier: the
clock is read from the answer's `Date` header (whole seconds; one second is
taken off for safety), or from this host's clock at the start of the pass when
the header is missing. Fills that arrive later are the next pass's; ingest
overlaps passes by minutes, which also absorbs clock skew.

Errors: 429 (waiting out `Retry-After`, which also pushes back the shared
schedule so other workers wait too), 5xx, timeouts, connection errors and
unreadable bodies are retried with exponential backoff and jitter, then raise
`HyperliquidUnavailable`; so does a `Retry-After` longer than
`max_retry_after_s` at once, rather than hold a worker. Other 4xx raise
`HyperliquidRejected` at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from hl_core import telemetry
from hl_core.settings import Settings
from jobs.errors import HyperliquidRejected, HyperliquidUnavailable
from jobs.hl_parse import parse_fills
from jobs.hl_parse_funding import parse_fundings
from jobs.hl_parse_ledger import parse_ledger
from jobs.ratelimit import (
    STANDARD_WEIGHT,
    PostgresRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from storage.fills import Fill, identity
from storage.funding import Funding
from storage.funding import identity as funding_identity
from storage.ledger import LedgerUpdate
from storage.ledger import identity as ledger_identity

log = logging.getLogger(__name__)

PAGE_LIMIT = 2000
# The smallest page the exchange may cut an answer to ("500 elements or distinct blocks").
SMALLEST_CUT = 500
HORIZON = 10_000
ITEMS_PER_WEIGHT = 20
# Requests that weigh 2 instead of 20 (Hyperliquid's rate-limit docs).
LIGHT = frozenset({"clearinghouseState", "spotClearinghouseState"})
LIGHT_COST = 2 / STANDARD_WEIGHT
# Requests that weigh one more per ITEMS_PER_WEIGHT items answered.
PER_ITEM = frozenset({"userFills", "userFillsByTime", "userFunding", "userNonFundingLedgerUpdates"})
USER_AGENT = "hl-analytics"


@dataclass(frozen=True)
class FillPage:
    """One page of a pass over a wallet's fills.

    `fills` are validated and new within the pass, oldest first; `rejected` are
    (raw fill, reason) pairs to quarantine. Every fill with time below
    `complete_until_ms` has been delivered by this page or an earlier one of the
    pass. `truncated` is True when the API may hide some of the wallet's fills:
    its history reaches past the 10,000-fill horizon, or a page held 500 or more
    fills of a single millisecond (the exchange may have cut that millisecond).
    """

    fills: list[Fill]
    rejected: list[tuple[object, str]]
    complete_until_ms: int
    truncated: bool


@dataclass(frozen=True)
class FundingPage:
    """One page of a pass over a wallet's funding payments, as `FillPage` is for fills."""

    items: list[Funding]
    rejected: list[tuple[object, str]]
    complete_until_ms: int


@dataclass(frozen=True)
class LedgerPage:
    """One page of a pass over a wallet's non-funding ledger updates."""

    items: list[LedgerUpdate]
    rejected: list[tuple[object, str]]
    complete_until_ms: int


@dataclass(frozen=True)
class _Kind:
    """What paging needs to know of one time-paged request kind."""

    name: str
    parse: Callable[[list[Any]], tuple[list[Any], list[tuple[object, str]]]]
    key: Callable[[Any], Hashable]
    horizon: int | None  # items beyond which older ones are out of reach; None: no limit


_FILLS = _Kind("fill", parse_fills, identity, HORIZON)
_FUNDING = _Kind("funding", parse_fundings, funding_identity, None)


@dataclass
class _Pass:
    seen: set[Hashable] = field(default_factory=set)
    seen_rejects: set[str] = field(default_factory=set)
    truncated: bool = False


def _server_ms(response: httpx.Response) -> int | None:
    """The exchange's clock when it answered, from the `Date` header (whole seconds)."""
    try:
        when = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return int(when.timestamp()) * 1000


def _raw_time(raw: object) -> int:
    time_ms = raw.get("time") if isinstance(raw, dict) else None
    return time_ms if isinstance(time_ms, int) and not isinstance(time_ms, bool) else -1


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HyperliquidClient:
    """Use one client per event loop; close it with `aclose()` or `async with`."""

    def __init__(
        self,
        base_url: str,
        *,
        limiter: RateLimiter,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        dexes: list[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # HYPERLIQUID_DEXES: builder-deployed dexes whose fills are also asked for one by one.
        self.dexes = list(dexes or [])
        self.limiter = limiter
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._timeout = httpx.Timeout(timeout_s)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self._timeout,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )

    @classmethod
    def from_settings(cls, settings: Settings, database_url: str) -> HyperliquidClient:
        """A client whose limiter is shared through Redis when REDIS_URL is set, else PostgreSQL."""
        limiter: RateLimiter
        if settings.redis_url:
            limiter = RedisRateLimiter(settings.redis_url, settings.hyperliquid_rps)
        else:
            limiter = PostgresRateLimiter(database_url, settings.hyperliquid_rps)
        return cls(settings.hyperliquid_api_url, limiter=limiter)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.limiter.aclose()

    async def __aenter__(self) -> HyperliquidClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- requests -----------------------------------------------------------------

    async def info(self, body: dict[str, Any], *, expect: type = list) -> Any:
        """One `/info` request through the limiter, retried as the module docstring says."""
        data, _ = await self._info(body, expect=expect)
        return data

    async def _info(self, body: dict[str, Any], *, expect: type) -> tuple[Any, int | None]:
        """The answer's JSON and the exchange's clock when it answered (None: unknown).

        A light request (`LIGHT`, weight 2) takes a tenth of a slot of the limiter."""
        what = f"{body.get('type')} for {body.get('user', 'the exchange')}"
        key = str(body.get("user", body.get("type")))
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            await self.limiter.acquire(key, LIGHT_COST if body.get("type") in LIGHT else 1.0)
            wait: float | None = None
            reason = ""
            try:
                response = await self._http.post(
                    "/info", content=json.dumps(body), timeout=self._timeout
                )
            except httpx.TimeoutException as exc:
                reason = f"timed out ({type(exc).__name__})"
                _count(body, "timeout")
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__}: {exc})"
                _count(body, "connection-error")
            else:
                status = response.status_code
                _count(body, str(status))
                if status == 200:
                    try:
                        data = json.loads(response.content, parse_float=Decimal)
                    except ValueError:
                        data = None
                        reason = "answered a body that is not valid JSON"
                    if isinstance(data, expect):
                        await self._charge_items(body, data)
                        return data, _server_ms(response)
                    reason = reason or f"answered {type(data).__name__}, not {expect.__name__}"
                elif status == 429 or status >= 500:
                    reason = f"answered HTTP {status}"
                    wait = _retry_after_s(response) if status in (429, 503) else None
                else:
                    raise HyperliquidRejected(
                        f"Hyperliquid rejected {what} with HTTP {status}: "
                        f"{response.text[:200].strip()!r}; fix the request, retrying will not help"
                    )
            if wait is not None and wait > self.max_retry_after_s:
                # Asked to wait longer than a retry here may: free the worker, keep the pause.
                await self.limiter.pause(wait)
                reason += f" with Retry-After {wait:.0f}s"
                break
            if attempt == self.max_attempts:
                break
            if wait is not None:
                # The budget is per IP: push back everyone's schedule, not only this request.
                await self.limiter.pause(wait)
                delay = 0.0
            else:
                ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                delay = ceiling * random.uniform(0.5, 1.0)
            log.warning(
                "Hyperliquid %s: %s; attempt %d of %d, retrying in %.2fs",
                what,
                reason,
                attempt,
                self.max_attempts,
                delay if wait is None else wait,
                extra={"action": "hl_retry", "attempt": attempt, "reason": reason},
            )
            await asyncio.sleep(delay)
        raise HyperliquidUnavailable(
            f"Hyperliquid {what} failed {attempt} times (last: {reason}); "
            "the job will be retried later"
        )

    async def _charge_items(self, body: dict[str, Any], data: Any) -> None:
        if body.get("type") in PER_ITEM and isinstance(data, list):
            extra = len(data) // ITEMS_PER_WEIGHT
            if extra:
                await self.limiter.charge(extra / STANDARD_WEIGHT)

    async def user_fills_by_time(
        self, address: str, start_ms: int, end_ms: int | None, dex: str | None = None
    ) -> tuple[list[Any], int | None]:
        """One page of raw fills and the exchange's clock when it answered."""
        body: dict[str, Any] = {
            "type": "userFillsByTime",
            "user": address,
            "startTime": start_ms,
            "aggregateByTime": False,
        }
        if end_ms is not None:
            body["endTime"] = end_ms
        if dex is not None:
            body["dex"] = dex
        raw, server_ms = await self._info(body, expect=list)
        return raw, server_ms

    async def clearinghouse_state(self, address: str, dex: str = "") -> dict[str, Any]:
        """A wallet's perp account on one dex ("" the default): `clearinghouseState`."""
        body: dict[str, Any] = {"type": "clearinghouseState", "user": address}
        if dex:
            body["dex"] = dex
        data: dict[str, Any] = await self.info(body, expect=dict)
        return data

    async def spot_clearinghouse_state(self, address: str) -> dict[str, Any]:
        """A wallet's spot balances: `spotClearinghouseState`."""
        body = {"type": "spotClearinghouseState", "user": address}
        data: dict[str, Any] = await self.info(body, expect=dict)
        return data

    async def latest_fills(self, address: str) -> tuple[list[Fill], list[tuple[object, str]]]:
        """The wallet's most recent fills (`userFills`: up to 2000, newest first)."""
        raw = await self.info({"type": "userFills", "user": address, "aggregateByTime": False})
        return parse_fills(raw)

    async def spot_pairs(self) -> dict[str, str]:
        """Spot coin as it appears in fills (`@N`, `PURR/USDC`) → `BASE/QUOTE`."""
        meta = await self.info({"type": "spotMeta"}, expect=dict)
        tokens = {t["index"]: t["name"] for t in meta.get("tokens", [])}
        pairs: dict[str, str] = {}
        for pair in meta.get("universe", []):
            base, quote = pair["tokens"]
            pairs[pair["name"]] = f"{tokens.get(base, base)}/{tokens.get(quote, quote)}"
        return pairs

    # -- paging -------------------------------------------------------------------

    async def fill_pages(
        self, address: str, start_ms: int, end_ms: int | None = None
    ) -> AsyncIterator[FillPage]:
        """Every fill of the wallet in `[start_ms, end_ms]`, page by page (see the module doc).

        With `dexes`, the documented request is followed by one pass per dex (`dex` in the
        request), de-duplicated together. A page may claim time only once every pass has
        seen it, so pages before the last pass claim nothing (`start_ms`), and the last
        pass's claims are capped by the earlier passes' final ones.
        """
        address = address.lower()
        state = _Pass()
        passes: list[str | None] = [None, *self.dexes]
        cap: int | None = None
        for n, dex in enumerate(passes):
            last_pass = n == len(passes) - 1
            final = start_ms
            async for page in self._pass(address, start_ms, end_ms, dex, state):
                final = page.complete_until_ms
                claim = page.complete_until_ms if cap is None else min(cap, final)
                yield FillPage(
                    page.fills, page.rejected, claim if last_pass else start_ms, page.truncated
                )
            cap = final if cap is None else min(cap, final)

    async def _pass(
        self, address: str, start_ms: int, end_ms: int | None, dex: str | None, state: _Pass
    ) -> AsyncIterator[FillPage]:
        async def fetch(cursor: int) -> tuple[list[Any], int | None]:
            return await self.user_fills_by_time(address, cursor, end_ms, dex)

        async for items, rejected, complete, truncated in self._paged(
            address, start_ms, end_ms, fetch, _FILLS, state
        ):
            yield FillPage(items, rejected, complete, truncated)

    async def _paged(
        self,
        address: str,
        start_ms: int,
        end_ms: int | None,
        fetch: Callable[[int], Awaitable[tuple[list[Any], int | None]]],
        kind: _Kind,
        state: _Pass,
    ) -> AsyncIterator[tuple[list[Any], list[tuple[object, str]], int, bool]]:
        """One pass of time-paged requests (see the module doc): each page's new items,
        new rejections, the time below which everything is delivered, and truncation."""
        started_ms = int(time.time() * 1000)
        cursor = start_ms
        while True:
            raw, server_ms = await fetch(cursor)
            items, rejected = kind.parse(raw)
            page_items = self._new_items(state, items, kind.key)
            page_rejected = self._new_rejects(state, address, rejected, kind.name)
            if kind.horizon is not None and len(state.seen) >= kind.horizon:
                state.truncated = True
            if len(raw) < SMALLEST_CUT:
                # Not cut (see the module doc): nothing more up to the exchange's clock.
                now_ms = (server_ms if server_ms is not None else started_ms) - 1000
                complete = now_ms if end_ms is None else min(end_ms, now_ms)
                yield page_items, page_rejected, max(complete, cursor), state.truncated
                return
            # Raw times, so a page whose last items are malformed still moves on.
            last = max(_raw_time(r) for r in raw)
            if last <= cursor:
                # A page inside one millisecond, maybe cut: the API cannot page into it.
                log.warning(
                    "wallet %s has %d or more %s entries at %d ms; any beyond this page's %d "
                    "are out of the API's reach",
                    address,
                    SMALLEST_CUT,
                    kind.name,
                    cursor,
                    len(raw),
                    extra={"action": "fill_burst_overflow", "wallet": address, "time_ms": cursor},
                )
                state.truncated = True
                last = cursor + 1
            yield page_items, page_rejected, last, state.truncated
            cursor = last

    async def user_funding(
        self, address: str, start_ms: int, end_ms: int | None
    ) -> tuple[list[Any], int | None]:
        """One page of raw funding entries (at most 500) and the exchange's clock."""
        body: dict[str, Any] = {"type": "userFunding", "user": address, "startTime": start_ms}
        if end_ms is not None:
            body["endTime"] = end_ms
        raw, server_ms = await self._info(body, expect=list)
        return raw, server_ms

    async def funding_pages(
        self, address: str, start_ms: int, end_ms: int | None = None
    ) -> AsyncIterator[FundingPage]:
        """Every funding payment of the wallet in `[start_ms, end_ms]`, page by page, paged
        as fills are (a page of 500, the most `userFunding` answers, may have been cut)."""
        address = address.lower()

        async def fetch(cursor: int) -> tuple[list[Any], int | None]:
            return await self.user_funding(address, cursor, end_ms)

        async for items, rejected, complete, _ in self._paged(
            address, start_ms, end_ms, fetch, _FUNDING, _Pass()
        ):
            yield FundingPage(items, rejected, complete)

    async def user_ledger(
        self, address: str, start_ms: int, end_ms: int | None
    ) -> tuple[list[Any], int | None]:
        """One page of raw non-funding ledger updates (at most 500) and the exchange's clock."""
        body: dict[str, Any] = {
            "type": "userNonFundingLedgerUpdates",
            "user": address,
            "startTime": start_ms,
        }
        if end_ms is not None:
            body["endTime"] = end_ms
        raw, server_ms = await self._info(body, expect=list)
        return raw, server_ms

    async def ledger_pages(
        self, address: str, start_ms: int, end_ms: int | None = None
    ) -> AsyncIterator[LedgerPage]:
        """Every ledger update of the wallet in `[start_ms, end_ms]`, page by page, paged as
        funding is; an update's identity is (time, hash, and its fields when the hash is 0)."""
        address = address.lower()
        kind = _Kind("ledger", lambda raws: parse_ledger(raws, address), ledger_identity, None)

        async def fetch(cursor: int) -> tuple[list[Any], int | None]:
            return await self.user_ledger(address, cursor, end_ms)

        async for items, rejected, complete, _ in self._paged(
            address, start_ms, end_ms, fetch, kind, _Pass()
        ):
            yield LedgerPage(items, rejected, complete)

    @staticmethod
    def _new_items(state: _Pass, items: list[Any], key: Callable[[Any], Hashable]) -> list[Any]:
        new: list[Any] = []
        for item in items:
            k = key(item)
            if k not in state.seen:
                state.seen.add(k)
                new.append(item)
        return new

    @staticmethod
    def _new_rejects(
        state: _Pass, address: str, rejected: list[tuple[object, str]], what: str = "fill"
    ) -> list[tuple[object, str]]:
        new: list[tuple[object, str]] = []
        for raw, reason in rejected:
            key = json.dumps(raw, sort_keys=True, default=str)
            if key in state.seen_rejects:
                continue
            state.seen_rejects.add(key)
            new.append((raw, reason))
            log.warning(
                "rejected a %s entry of wallet %s: %s",
                what,
                address,
                reason,
                extra={"action": f"{what}_rejected", "wallet": address, "reason": reason},
            )
        return new


def _count(body: dict[str, Any], outcome: str) -> None:
    metrics = telemetry.worker_metrics()
    metrics.hl_requests.labels(str(body.get("type")), outcome).inc()
    if outcome == "429":
        metrics.hl_rate_limited.inc()
