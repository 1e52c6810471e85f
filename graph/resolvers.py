"""Query and Mutation: each resolver checks the caller, makes one storage call, returns types."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import date
from typing import Annotated, Any, TypeVar, cast

import strawberry
from strawberry.types import Info

from graph import cursors
from graph.arguments import checked_days, checked_text, page_size
from graph.context import RequestContext, SubscriptionContext
from graph.errors import BadUserInput, ClientError, PermissionDenied
from graph.limits import LIMIT_MAX, LIMIT_MIN, MAX_ADDRESSES, limit_error
from graph.types import (
    CoinMetrics,
    DashboardSummary,
    DateRange,
    DayMetrics,
    MetricsChange,
    MetricsRange,
    PageInfo,
    TrackedWallet,
    TrackedWalletConnection,
    TrackedWalletEdge,
    TrackWalletsResult,
    WalletMetrics,
    WalletOrder,
    WalletRank,
)
from jobs import tracking
from storage import dashboard, orgs
from storage.db import connection
from storage.errors import InvalidAddress, TooManyWallets

Ctx = Info[RequestContext, None]
F = TypeVar("F", bound=Callable[..., Any])


def field(description: str) -> Callable[[F], F]:
    """`strawberry.field(description=…)`, typed (Strawberry's overloads lose the type)."""
    return cast(Callable[[F], F], strawberry.field(description=description))


def mutation(description: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], strawberry.mutation(description=description))


def subscription(description: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], strawberry.subscription(description=description))


def _address(address: str) -> str:
    try:
        return orgs.normalize_address(address)
    except InvalidAddress as exc:
        raise BadUserInput(exc.message) from None


BETWEEN = "`between` (UTC days, both included) replaces `range` when given"


def days_of(range: MetricsRange, between: DateRange | None, today: date) -> tuple[date, date]:
    """The first and last UTC day asked for: `between` when given, else `range` ending today."""
    if between is None:
        return dashboard.range_bounds(range.name, today)
    return checked_days(between.from_, between.to, today)


MAX_SEARCH_CHARS = 100
MAX_LABEL_CHARS = 64


def _label(label: str | None) -> str | None:
    """A label as stored: 1 to 64 printable characters, or None (no label)."""
    if label is None:
        return None
    if not 1 <= len(label) <= MAX_LABEL_CHARS:
        raise BadUserInput(
            f"label: {len(label)} characters: a label has 1 to {MAX_LABEL_CHARS} characters "
            "(null clears it)"
        )
    if not label.isprintable():
        raise BadUserInput(
            "label: control characters (newlines, tabs, …) are not allowed: "
            "a label has only printable characters"
        )
    return label


RANGE = "UTC days ending today (ignored when `between` is given)"
ADDRESS = "0x followed by 40 hexadecimal digits, any case"


@strawberry.type(description="What an org's members read; every field is scoped to their org")
class Query:
    @field(description="the org's latest day with activity, the day before, and its wallets")
    async def dashboard_summary(self, info: Ctx) -> DashboardSummary:
        ctx = info.context
        async with ctx.connection() as conn:
            row = await dashboard.summary(conn, ctx.caller.org_id)
        return DashboardSummary.of(row)

    @field(
        description="one entry per UTC day, oldest first, the last being today (UTC); "
        "days without fills are zeros"
    )
    async def global_metrics(
        self,
        info: Ctx,
        range: Annotated[MetricsRange, strawberry.argument(description=RANGE)] = MetricsRange.D30,
        between: Annotated[DateRange | None, strawberry.argument(description=BETWEEN)] = None,
    ) -> list[DayMetrics]:
        ctx = info.context
        start, end = days_of(range, between, ctx.today)
        async with ctx.connection((start, end)) as conn:
            rows = await dashboard.global_series(conn, ctx.caller.org_id, start, end)
        return [DayMetrics.of(row) for row in rows]

    @field(
        description="the org's wallets with ≥ 1 trade fill in the same days as "
        "globalMetrics(range), ranked by orderBy descending, ties by address ascending, "
        "rank starting at 1; limit 1..100"
    )
    async def top_wallets(
        self,
        info: Ctx,
        range: Annotated[MetricsRange, strawberry.argument(description=RANGE)] = MetricsRange.D30,
        limit: Annotated[int, strawberry.argument(description="wallets to list, 1..100")] = 20,
        order_by: Annotated[
            WalletOrder, strawberry.argument(description="what to rank by, descending")
        ] = WalletOrder.VOLUME,
        between: Annotated[DateRange | None, strawberry.argument(description=BETWEEN)] = None,
    ) -> list[WalletRank]:
        if not LIMIT_MIN <= limit <= LIMIT_MAX:  # validation refuses it first; kept as a guard
            raise limit_error(limit)
        ctx = info.context
        start, end = days_of(range, between, ctx.today)
        async with ctx.connection((start, end)) as conn:
            rows = await dashboard.top_wallets(
                conn, ctx.caller.org_id, start, end, limit, order_by.name
            )
        return [WalletRank.of(row) for row in rows]

    @field(
        description="one wallet the org tracks, over the same days as globalMetrics(range); "
        "null when the org does not track it"
    )
    async def wallet(
        self,
        info: Ctx,
        address: Annotated[str, strawberry.argument(description=ADDRESS)],
        range: Annotated[MetricsRange, strawberry.argument(description=RANGE)] = MetricsRange.D30,
        between: Annotated[DateRange | None, strawberry.argument(description=BETWEEN)] = None,
    ) -> WalletMetrics | None:
        normalized = _address(address)
        ctx = info.context
        start, end = days_of(range, between, ctx.today)
        async with ctx.connection((start, end)) as conn:
            row = await dashboard.wallet_series(conn, ctx.caller.org_id, normalized, start, end)
        return WalletMetrics.of(row, start, end) if row else None

    @field(
        description="the org's trading per coin over the same days as globalMetrics(range) "
        "(or between's), by volumeUsd descending, ties by coin"
    )
    async def coin_breakdown(
        self,
        info: Ctx,
        range: Annotated[MetricsRange, strawberry.argument(description=RANGE)] = MetricsRange.D30,
        between: Annotated[DateRange | None, strawberry.argument(description=BETWEEN)] = None,
    ) -> list[CoinMetrics]:
        ctx = info.context
        start, end = days_of(range, between, ctx.today)
        async with ctx.connection((start, end)) as conn:
            rows = await dashboard.coin_breakdown(conn, ctx.caller.org_id, start, end)
        return [CoinMetrics.of(row) for row in rows]

    @field(
        description="the org's tracked wallets and where their ingestion stands, ordered by "
        "address; `search` matches an address prefix or a label substring (any case); "
        "first 1..200"
    )
    async def tracked_wallets(
        self,
        info: Ctx,
        first: Annotated[
            int | None, strawberry.argument(description="wallets per page, 1..200 (default 50)")
        ] = 50,
        after: Annotated[
            str | None, strawberry.argument(description="an endCursor of a previous page")
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(description="an address prefix or a part of a label"),
        ] = None,
    ) -> TrackedWalletConnection:
        ctx = info.context
        org_id = ctx.caller.org_id
        first = page_size(first)
        position = cursors.decode(after, "wallets", org_id) if after is not None else None
        if position is not None and not (
            len(position) == 1 and isinstance(position[0], str) and len(position[0]) == 42
        ):
            raise BadUserInput("after: not a cursor of this list")
        if search is not None:
            search = checked_text("search", search, 0, MAX_SEARCH_CHARS).strip() or None
        async with ctx.connection() as conn:
            page = await dashboard.tracked_wallets(
                conn, org_id, first, position[0] if position else None, search
            )
        return _tracked_wallet_page(org_id, page, after)


def _tracked_wallet_page(
    org_id: uuid.UUID, page: dashboard.TrackedWalletPage, after: str | None
) -> TrackedWalletConnection:
    edges = [
        TrackedWalletEdge(
            cursor=cursors.encode("wallets", org_id, [w.address]), node=TrackedWallet.of(w)
        )
        for w in page.wallets
    ]
    return TrackedWalletConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=page.total_count,
    )


def _track(
    database_url: str, org_id: uuid.UUID, addresses: list[str], max_wallets: int
) -> tuple[list[str], list[str]]:
    """`jobs.tracking.track_wallets` in one transaction (in a worker thread: the
    pipeline's functions are synchronous); (every address given, those newly tracked)."""
    with connection(database_url) as conn:
        done = tracking.track_wallets(conn, org_id, addresses, max_wallets=max_wallets)
    return [w.address for w in done.wallets], [w.address for w in done.added]


def _untrack(database_url: str, org_id: uuid.UUID, address: str) -> bool:
    """`jobs.tracking.untrack_wallet` in one transaction; True when the org tracked it."""
    with connection(database_url) as conn:
        return tracking.untrack_wallet(conn, org_id, address) is not None


def _admin(info: Ctx, what: str = "change tracked wallets") -> RequestContext:
    ctx = info.context
    if not ctx.caller.is_admin:
        raise PermissionDenied(
            f"only an admin of the organisation may {what}; "
            "ask an admin, or have your role changed with `hl-analytics users add`"
        )
    return ctx


@strawberry.type(description="Changes to the org's tracked wallets (admins only)")
class Mutation:
    @mutation(description="admin only: track wallets and queue their ingest and the recomputation")
    async def track_wallets(
        self,
        info: Ctx,
        addresses: Annotated[
            list[str],
            strawberry.argument(description=f"1 to {MAX_ADDRESSES} wallet addresses, any case"),
        ],
    ) -> TrackWalletsResult:
        ctx = _admin(info)
        if not 1 <= len(addresses) <= MAX_ADDRESSES:
            raise BadUserInput(f"give 1 to {MAX_ADDRESSES} addresses per call")
        normalized = [_address(a) for a in addresses]
        try:
            tracked, added = await asyncio.to_thread(
                _track,
                ctx.services.database_url,
                ctx.caller.org_id,
                normalized,
                ctx.services.max_wallets_per_org,
            )
        except TooManyWallets as exc:
            raise BadUserInput(exc.message) from None
        await ctx.services.cache.invalidate(ctx.caller.org_id)
        return TrackWalletsResult(tracked=tracked, added=added)

    @mutation(
        description="admin only: set the org's label of a wallet it tracks (up to 64 "
        "printable characters); null clears it"
    )
    async def label_wallet(
        self,
        info: Ctx,
        address: Annotated[str, strawberry.argument(description=ADDRESS)],
        label: Annotated[
            str | None,
            strawberry.argument(description="1 to 64 printable characters; null clears it"),
        ] = None,
    ) -> TrackedWallet:
        ctx = _admin(info, "label wallets")
        normalized = _address(address)
        value = _label(label)
        org_id = ctx.caller.org_id
        async with ctx.connection() as conn:
            if not await dashboard.set_label(conn, org_id, normalized, value):
                raise BadUserInput(f"address: the organisation does not track {normalized}")
            row = await dashboard.tracked_wallet(conn, org_id, normalized)
        assert row is not None
        await ctx.services.cache.invalidate(org_id)
        return TrackedWallet.of(row)

    @mutation(description="admin only: stop tracking a wallet; false when it was not tracked")
    async def untrack_wallet(
        self, info: Ctx, address: Annotated[str, strawberry.argument(description=ADDRESS)]
    ) -> bool:
        ctx = _admin(info)
        normalized = _address(address)
        removed = await asyncio.to_thread(
            _untrack, ctx.services.database_url, ctx.caller.org_id, normalized
        )
        await ctx.services.cache.invalidate(ctx.caller.org_id)
        return removed


@strawberry.type(
    description="Live events of the caller's org, over the graphql-transport-ws protocol "
    "at /graphql (the token in connection_init's payload)"
)
class Subscription:
    @subscription(
        "an event each time the org's numbers change, at most one a second "
        "(changes in between are merged): the days to query again"
    )
    async def metrics_changed(
        self, info: Info[SubscriptionContext, None]
    ) -> AsyncGenerator[MetricsChange, None]:
        ctx = info.context
        if not isinstance(ctx, SubscriptionContext):
            raise ClientError("subscribe over a websocket (graphql-transport-ws) at /graphql")
        feed = ctx.open_feed()
        try:
            async for event in feed:
                yield MetricsChange(days=list(event.days), changed_at=event.changed_at)
        finally:
            feed.close()
