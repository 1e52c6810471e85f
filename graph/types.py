"""The GraphQL types of the public schema (the contract), plus `wallet`, the mutations
and what dashboards query: per-coin metrics, the tracked-wallet list and fills (Relay
connections with cursors from `graph.cursors`).

Field names are snake_case here and camelCase in the schema (Strawberry's
default). `Decimal` is an exact decimal string: `graph.schema` maps Python's
Decimal to a scalar that never uses exponent notation, and every USD amount goes
through `usd()` (6 places, half-even) on its way out; prices and sizes do not.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import Enum
from typing import Annotated, Any, TypeVar, cast

import strawberry

from graph import cursors
from graph.arguments import checked_days, checked_text, page_size
from graph.context import RequestContext
from graph.errors import BadUserInput
from storage import dashboard

MAX_COIN_CHARS = 100
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _described(description: str) -> Callable[[F], F]:
    """`strawberry.field(description=…)` for a method, typed."""
    return cast(Callable[[F], F], strawberry.field(description=description))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

USD_PLACES = 6
_USD_QUANTUM = Decimal(1).scaleb(-USD_PLACES)
_PER_USER_QUANTUM = Decimal("0.01")


def _quantize(value: Decimal, quantum: Decimal) -> Decimal:
    """`value` rounded half-even to `quantum`'s places, without a negative zero."""
    with localcontext() as ctx:
        ctx.prec = 80  # NUMERIC sums can be long; never round before the last place
        rounded = Decimal(value).quantize(quantum, rounding=ROUND_HALF_EVEN)
    return rounded.copy_abs() if rounded.is_zero() else rounded


def usd(value: Decimal) -> Decimal:
    """A USD amount as the API shows it: exactly 6 decimals, rounded half-even."""
    return _quantize(value, _USD_QUANTUM)


def per_user(total: Decimal, dau: int) -> Decimal:
    """`avgVolumePerUser`: total / dau from the exact total, 2 decimals half-even; 0 when
    dau is 0."""
    if dau <= 0:
        return _quantize(Decimal(0), _PER_USER_QUANTUM)
    with localcontext() as ctx:
        ctx.prec = 80
        quotient = Decimal(total) / dau
    return _quantize(quotient, _PER_USER_QUANTUM)


# Descriptions of the fields several types share.
D_DAY = "the UTC day"
D_DAU = "the org's tracked wallets with at least one trade fill that day"
D_TRADES = "trade fills (system fills such as dust conversions are not trades)"
D_SPOT = "volume of spot trades in USD (px × sz when the quote is a USD stablecoin)"
D_PERP = "volume of perp trades in USD, builder-deployed dexes included"
D_OUTCOME = "volume of outcome-market (HIP-4) trades in USD"
D_FEES = "fees in USD, rebates negative, system fills included"
D_PNL = "realized PnL (closedPnl) in USD, system fills included"
D_ACTIVE = "days with at least one trade fill"
D_FUNDING = (
    "funding payments in USD, signed (negative = paid), of perps whose collateral is a "
    "USD stablecoin; on the UTC day of each hourly payment"
)
D_NET = "realizedPnlUsd - feesUsd + fundingUsd: PnL net of fees and funding"
D_DEPOSITS = (
    "deposits in USD: bridge deposits and transfers received from another address "
    "(README: ledger update types)"
)
D_WITHDRAWALS = (
    "withdrawals in USD: bridge withdrawals (fee included) and transfers sent to another "
    "address (README: ledger update types)"
)


def net_pnl(realized: Decimal, fees: Decimal, funding: Decimal) -> Decimal:
    """Net PnL from the exact stored amounts, rounded once like every USD amount."""
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal(realized) - Decimal(fees) + Decimal(funding)
    return usd(exact)


D_ADDRESS = "the wallet: 0x followed by 40 lowercase hex digits"
D_COMPLETE_FROM = (
    "the UTC day from which every fill of the wallet is stored (an archive backfill made "
    "its history contiguous, or the API reached its first fill); null when not known: "
    "older fills may be out of reach (10,000 most recent through the API)"
)


@strawberry.enum(description="A range of UTC days ending today (UTC)")
class MetricsRange(Enum):
    D7 = strawberry.enum_value("D7", description="the last 7 days, today included")
    D30 = strawberry.enum_value("D30", description="the last 30 days, today included")
    D90 = strawberry.enum_value("D90", description="the last 90 days, today included")


@strawberry.input(
    description="UTC days from `from` to `to`, both included; valid when "
    "from <= to <= today (UTC) and the range covers at most 366 days"
)
class DateRange:
    from_: date = strawberry.field(name="from", description="first UTC day")
    to: date = strawberry.field(description="last UTC day")


@strawberry.enum(description="What topWallets ranks by, descending")
class WalletOrder(Enum):
    VOLUME = strawberry.enum_value("VOLUME", description="totalVolumeUsd")
    TRADES = strawberry.enum_value("TRADES", description="tradeCount")
    PNL = strawberry.enum_value("PNL", description="realizedPnlUsd")
    FEES = strawberry.enum_value("FEES", description="feesUsd")
    NET_PNL = strawberry.enum_value("NET_PNL", description="netPnlUsd")
    FUNDING = strawberry.enum_value("FUNDING", description="fundingUsd")


@strawberry.type(description="An org's numbers of one UTC day (zeros on a day without fills)")
class DayMetrics:
    day: date = strawberry.field(description=D_DAY)
    dau: int = strawberry.field(description=D_DAU)
    trade_count: int = strawberry.field(description=D_TRADES)
    spot_volume_usd: Decimal = strawberry.field(description=D_SPOT)
    perp_volume_usd: Decimal = strawberry.field(description=D_PERP)
    outcome_volume_usd: Decimal = strawberry.field(description=D_OUTCOME)
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal = strawberry.field(description=D_FEES)
    realized_pnl_usd: Decimal = strawberry.field(description=D_PNL)
    avg_volume_per_user: Decimal = strawberry.field(
        description="totalVolumeUsd / dau, 2 decimals (rounded half-even); 0.00 when dau = 0"
    )
    funding_usd: Decimal = strawberry.field(description=D_FUNDING)
    net_pnl_usd: Decimal = strawberry.field(description=D_NET)
    deposits_usd: Decimal = strawberry.field(description=D_DEPOSITS)
    withdrawals_usd: Decimal = strawberry.field(description=D_WITHDRAWALS)

    @classmethod
    def of(cls, row: dashboard.DayMetrics) -> DayMetrics:
        return cls(
            day=row.day,
            dau=row.dau,
            trade_count=row.trade_count,
            spot_volume_usd=usd(row.spot_volume_usd),
            perp_volume_usd=usd(row.perp_volume_usd),
            outcome_volume_usd=usd(row.outcome_volume_usd),
            total_volume_usd=usd(row.total_volume_usd),
            fees_usd=usd(row.fees_usd),
            realized_pnl_usd=usd(row.realized_pnl_usd),
            avg_volume_per_user=per_user(row.total_volume_usd, row.dau),
            funding_usd=usd(row.funding_usd),
            net_pnl_usd=net_pnl(row.realized_pnl_usd, row.fees_usd, row.funding_usd),
            deposits_usd=usd(row.deposits_usd),
            withdrawals_usd=usd(row.withdrawals_usd),
        )


class _Once:
    """One read of the database per object, however many of its fields need it (GraphQL
    resolves an object's fields concurrently): the first caller starts it, all await it."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(load())
        result: T = await self._tasks[key]
        return result


def _usd_or_none(value: Decimal | None) -> Decimal | None:
    return None if value is None else usd(value)


D_SNAPSHOT_USD = "in USD; null when the dex's collateral is not a USD stablecoin"


@strawberry.type(description="A spot balance of the wallet's latest snapshot")
class Balance:
    coin: str = strawberry.field(description="the token as Hyperliquid names it (USDC, HYPE)")
    total: Decimal = strawberry.field(description="the balance, in the token")
    hold: Decimal = strawberry.field(description="the part held by open orders, in the token")
    value_usd: Decimal | None = strawberry.field(
        description="the balance in USD when the token is a USD stablecoin (it then counts in "
        "accountValueUsd); null otherwise: no price is guessed"
    )

    @classmethod
    def of(cls, row: dashboard.BalanceRow) -> Balance:
        return cls(
            coin=row.coin,
            total=row.total,
            hold=row.hold,
            value_usd=usd(row.total) if row.usd_priced else None,
        )


@strawberry.type(description="An open perp position of the wallet's latest snapshot")
class Position:
    coin: str = strawberry.field(description="the perp as Hyperliquid names it (BTC, xyz:TSLA)")
    dex: str | None = strawberry.field(
        description="the builder-deployed dex (xyz of xyz:TSLA); null for the default"
    )
    size: Decimal = strawberry.field(description="signed size: negative is short")
    entry_px: Decimal | None = strawberry.field(description="average entry price")
    position_value_usd: Decimal | None = strawberry.field(
        description=f"|size| × mark price, {D_SNAPSHOT_USD}"
    )
    unrealized_pnl_usd: Decimal | None = strawberry.field(
        description=f"unrealized PnL at the mark price, {D_SNAPSHOT_USD}"
    )
    leverage: Decimal = strawberry.field(description="the position's leverage")
    isolated: bool = strawberry.field(description="isolated margin (else cross)")
    liquidation_px: Decimal | None = strawberry.field(
        description="the liquidation price; null when none"
    )
    margin_used_usd: Decimal | None = strawberry.field(
        description=f"margin the position holds, {D_SNAPSHOT_USD}"
    )
    funding_since_open_usd: Decimal | None = strawberry.field(
        description=f"funding received since the position opened (negative = paid), "
        f"{D_SNAPSHOT_USD}"
    )

    @classmethod
    def of(cls, row: dashboard.PositionRow) -> Position:
        def money(value: Decimal) -> Decimal | None:
            return usd(value) if row.usd_priced else None

        return cls(
            coin=row.coin,
            dex=row.dex or None,
            size=row.size,
            entry_px=row.entry_px,
            position_value_usd=money(row.position_value),
            unrealized_pnl_usd=money(row.unrealized_pnl),
            leverage=row.leverage,
            isolated=row.leverage_type == "isolated",
            liquidation_px=row.liquidation_px,
            margin_used_usd=money(row.margin_used),
            funding_since_open_usd=money(row.funding_since_open),
        )


@strawberry.type(description="A wallet's account value at the end of one UTC day")
class AccountValueDay:
    day: date = strawberry.field(description=D_DAY)
    account_value_usd: Decimal | None = strawberry.field(
        description="the account value of the day's last snapshot; null where none"
    )


D_ACCOUNT_VALUE = (
    "account value in USD: the accountValue of each perp dex whose collateral is a USD "
    "stablecoin plus spot balances in USD stablecoins (others are not priced)"
)


@strawberry.type(description="The org's latest day with activity, and the day before it")
class DashboardSummary:
    day: date | None = strawberry.field(
        description="latest UTC day with any fill of the org; null if none"
    )
    latest: DayMetrics | None = strawberry.field(description="that day")
    previous: DayMetrics | None = strawberry.field(
        description="the day before it (zeros if no activity)"
    )
    tracked_wallets: int = strawberry.field(description="wallets the org tracks")
    last_synced_at: datetime | None = strawberry.field(
        description="newest successful ingest among the org's wallets"
    )
    once: strawberry.Private[_Once] = dataclasses.field(default_factory=_Once)

    async def _account(self, info: strawberry.Info[RequestContext, None]) -> dashboard.Account:
        ctx = info.context

        async def load() -> dashboard.Account:
            async with ctx.connection() as conn:
                return await dashboard.org_account(conn, ctx.caller.org_id)

        return await self.once.get("account", load)

    @_described(
        f"{D_ACCOUNT_VALUE}, summed over the org's wallets' latest snapshots; null when none"
    )
    async def account_value_usd(
        self, info: strawberry.Info[RequestContext, None]
    ) -> Decimal | None:
        return _usd_or_none((await self._account(info)).account_value_usd)

    @_described(
        "unrealized PnL in USD summed over the org's wallets' latest snapshots; null when none"
    )
    async def unrealized_pnl_usd(
        self, info: strawberry.Info[RequestContext, None]
    ) -> Decimal | None:
        return _usd_or_none((await self._account(info)).unrealized_pnl_usd)

    @_described("open perp positions in the org's wallets' latest snapshots")
    async def open_positions(self, info: strawberry.Info[RequestContext, None]) -> int:
        return (await self._account(info)).open_positions

    @_described("the oldest of those latest snapshots: how stale the sums can be; null when none")
    async def positions_as_of(self, info: strawberry.Info[RequestContext, None]) -> datetime | None:
        return (await self._account(info)).as_of

    @classmethod
    def of(cls, row: dashboard.Summary) -> DashboardSummary:
        return cls(
            day=row.day,
            latest=DayMetrics.of(row.latest) if row.latest else None,
            previous=DayMetrics.of(row.previous) if row.previous else None,
            tracked_wallets=row.tracked_wallets,
            last_synced_at=row.last_synced_at,
        )


@strawberry.type(description="A wallet's place and sums over topWallets' days")
class WalletRank:
    rank: int = strawberry.field(description="1 for the first, by orderBy")
    address: str = strawberry.field(description=D_ADDRESS)
    trade_count: int = strawberry.field(description=D_TRADES)
    spot_volume_usd: Decimal = strawberry.field(description=D_SPOT)
    perp_volume_usd: Decimal = strawberry.field(description=D_PERP)
    outcome_volume_usd: Decimal = strawberry.field(description=D_OUTCOME)
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal = strawberry.field(description=D_FEES)
    realized_pnl_usd: Decimal = strawberry.field(description=D_PNL)
    active_days: int = strawberry.field(description=D_ACTIVE)
    funding_usd: Decimal = strawberry.field(description=D_FUNDING)
    net_pnl_usd: Decimal = strawberry.field(description=D_NET)
    deposits_usd: Decimal = strawberry.field(description=D_DEPOSITS)
    withdrawals_usd: Decimal = strawberry.field(description=D_WITHDRAWALS)

    @classmethod
    def of(cls, row: dashboard.WalletRank) -> WalletRank:
        return cls(
            rank=row.rank,
            address=row.address,
            trade_count=row.trade_count,
            spot_volume_usd=usd(row.spot_volume_usd),
            perp_volume_usd=usd(row.perp_volume_usd),
            outcome_volume_usd=usd(row.outcome_volume_usd),
            total_volume_usd=usd(row.total_volume_usd),
            fees_usd=usd(row.fees_usd),
            realized_pnl_usd=usd(row.realized_pnl_usd),
            active_days=row.active_days,
            funding_usd=usd(row.funding_usd),
            net_pnl_usd=net_pnl(row.realized_pnl_usd, row.fees_usd, row.funding_usd),
            deposits_usd=usd(row.deposits_usd),
            withdrawals_usd=usd(row.withdrawals_usd),
        )


@strawberry.type(description="A wallet's numbers of one UTC day (zeros on a day without fills)")
class WalletDay:
    day: date = strawberry.field(description=D_DAY)
    trade_count: int = strawberry.field(description=D_TRADES)
    spot_volume_usd: Decimal = strawberry.field(description=D_SPOT)
    perp_volume_usd: Decimal = strawberry.field(description=D_PERP)
    outcome_volume_usd: Decimal = strawberry.field(description=D_OUTCOME)
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal = strawberry.field(description=D_FEES)
    realized_pnl_usd: Decimal = strawberry.field(description=D_PNL)
    funding_usd: Decimal = strawberry.field(description=D_FUNDING)
    net_pnl_usd: Decimal = strawberry.field(description=D_NET)
    deposits_usd: Decimal = strawberry.field(description=D_DEPOSITS)
    withdrawals_usd: Decimal = strawberry.field(description=D_WITHDRAWALS)


@strawberry.type(description="A wallet's sums over a range")
class WalletTotals:
    trade_count: int = strawberry.field(description=D_TRADES)
    spot_volume_usd: Decimal = strawberry.field(description=D_SPOT)
    perp_volume_usd: Decimal = strawberry.field(description=D_PERP)
    outcome_volume_usd: Decimal = strawberry.field(description=D_OUTCOME)
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal = strawberry.field(description=D_FEES)
    realized_pnl_usd: Decimal = strawberry.field(description=D_PNL)
    active_days: int = strawberry.field(description=D_ACTIVE)
    funding_usd: Decimal = strawberry.field(description=D_FUNDING)
    net_pnl_usd: Decimal = strawberry.field(description=D_NET)
    deposits_usd: Decimal = strawberry.field(description=D_DEPOSITS)
    withdrawals_usd: Decimal = strawberry.field(description=D_WITHDRAWALS)


@strawberry.type(description="One tracked wallet over a range: a zero-filled day series and totals")
class WalletMetrics:
    address: str = strawberry.field(description=D_ADDRESS)
    days: list[WalletDay] = strawberry.field(description="one entry per UTC day, oldest first")
    totals: WalletTotals = strawberry.field(description="the sums over those days")
    last_synced_at: datetime | None = strawberry.field(
        description="its last successful ingest; null when none"
    )
    unpriced_fills: int = strawberry.field(
        description="fills over these days with a volume or fee that has no USD value "
        "(quote or fee token not a USD stablecoin): left out of the USD amounts"
    )
    history_complete_from: date | None = strawberry.field(description=D_COMPLETE_FROM)
    # The days of the series: what `fills` lists when it is given no `between`.
    start: strawberry.Private[date]
    end: strawberry.Private[date]
    once: strawberry.Private[_Once] = dataclasses.field(default_factory=_Once)

    async def _account(self, info: strawberry.Info[RequestContext, None]) -> dashboard.Account:
        ctx = info.context

        async def load() -> dashboard.Account:
            async with ctx.connection() as conn:
                return await dashboard.wallet_account(conn, ctx.caller.org_id, self.address)

        return await self.once.get("account", load)

    @_described(f"{D_ACCOUNT_VALUE}, of the latest snapshot; null before the first")
    async def account_value_usd(
        self, info: strawberry.Info[RequestContext, None]
    ) -> Decimal | None:
        return _usd_or_none((await self._account(info)).account_value_usd)

    @_described(
        "unrealized PnL in USD of the latest snapshot's positions on USD-collateral dexes; "
        "null before the first"
    )
    async def unrealized_pnl_usd(
        self, info: strawberry.Info[RequestContext, None]
    ) -> Decimal | None:
        return _usd_or_none((await self._account(info)).unrealized_pnl_usd)

    @_described("when the latest snapshot was taken (the exchange's clock); null before the first")
    async def positions_as_of(self, info: strawberry.Info[RequestContext, None]) -> datetime | None:
        return (await self._account(info)).as_of

    @_described(
        "the spot balances of the latest snapshot, by coin; those not in a USD stablecoin "
        "are listed unpriced"
    )
    async def balances(self, info: strawberry.Info[RequestContext, None]) -> list[Balance]:
        ctx = info.context
        async with ctx.connection() as conn:
            rows = await dashboard.wallet_balances(conn, ctx.caller.org_id, self.address)
        return [Balance.of(row) for row in rows]

    @_described("the open perp positions of the latest snapshot, by coin")
    async def positions(self, info: strawberry.Info[RequestContext, None]) -> list[Position]:
        ctx = info.context
        async with ctx.connection() as conn:
            rows = await dashboard.wallet_positions(conn, ctx.caller.org_id, self.address)
        return [Position.of(row) for row in rows]

    @_described(
        "the account value at the end of each UTC day of the range (or between's), oldest "
        "first: the day's last snapshot, null where none"
    )
    async def account_value(
        self,
        info: strawberry.Info[RequestContext, None],
        range: Annotated[
            MetricsRange, strawberry.argument(description="the last 7, 30 or 90 days")
        ] = MetricsRange.D30,
        between: Annotated[
            DateRange | None,
            strawberry.argument(description="UTC days, both included, instead of `range`"),
        ] = None,
    ) -> list[AccountValueDay]:
        ctx = info.context
        start, end = (
            dashboard.range_bounds(range.name, ctx.today)
            if between is None
            else checked_days(between.from_, between.to, ctx.today)
        )
        async with ctx.connection() as conn:
            rows = await dashboard.account_series(conn, ctx.caller.org_id, self.address, start, end)
        return [AccountValueDay(day=d, account_value_usd=_usd_or_none(v)) for d, v in rows]

    @_described(
        "the wallet's trading per coin over the series' days, by volumeUsd descending, ties by coin"
    )
    async def coins(self, info: strawberry.Info[RequestContext, None]) -> list[CoinMetrics]:
        ctx = info.context
        async with ctx.connection((self.start, self.end)) as conn:
            rows = await dashboard.coin_breakdown(
                conn, ctx.caller.org_id, self.start, self.end, self.address
            )
        return [CoinMetrics.of(row) for row in rows]

    @_described(
        "the wallet's fills (trades and system fills), newest first, on the "
        "series' days or `between`'s, of one coin when `coin` is given; first 1..200"
    )
    async def fills(
        self,
        info: strawberry.Info[RequestContext, None],
        first: Annotated[
            int | None, strawberry.argument(description="fills per page, 1..200 (default 50)")
        ] = 50,
        after: Annotated[
            str | None, strawberry.argument(description="an endCursor of a previous page")
        ] = None,
        coin: Annotated[
            str | None,
            strawberry.argument(description="only this coin, as Hyperliquid names it"),
        ] = None,
        between: Annotated[
            DateRange | None,
            strawberry.argument(description="UTC days, both included, instead of the series'"),
        ] = None,
    ) -> FillConnection:
        ctx = info.context
        org_id = ctx.caller.org_id
        size = page_size(first)
        start, end = (
            (self.start, self.end)
            if between is None
            else checked_days(between.from_, between.to, ctx.today)
        )
        position = None
        if after is not None:
            key = cursors.decode(after, "fills", org_id, self.address)
            if not (
                len(key) == 4
                and all(isinstance(k, int) and not isinstance(k, bool) for k in key[:3])
                and isinstance(key[3], str)
            ):
                raise BadUserInput("after: not a cursor of this list")
            position = (key[0], key[1], key[2], key[3])
        if coin is not None:
            checked_text("coin", coin, 1, MAX_COIN_CHARS)
        async with ctx.connection((start, end)) as conn:
            page = await dashboard.wallet_fills(
                conn,
                org_id,
                self.address,
                start,
                end,
                size,
                after=position,
                coin=coin,
                usd_tokens=ctx.services.usd_tokens,
            )
        edges = [
            FillEdge(cursor=cursors.encode("fills", org_id, f.key, self.address), node=Fill.of(f))
            for f in page.fills
        ]
        return FillConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @classmethod
    def of(cls, row: dashboard.WalletSeries, start: date, end: date) -> WalletMetrics:
        t = row.totals
        return cls(
            address=row.address,
            days=[
                WalletDay(
                    day=d.day,
                    trade_count=d.trade_count,
                    spot_volume_usd=usd(d.spot_volume_usd),
                    perp_volume_usd=usd(d.perp_volume_usd),
                    outcome_volume_usd=usd(d.outcome_volume_usd),
                    total_volume_usd=usd(d.total_volume_usd),
                    fees_usd=usd(d.fees_usd),
                    realized_pnl_usd=usd(d.realized_pnl_usd),
                    funding_usd=usd(d.funding_usd),
                    net_pnl_usd=net_pnl(d.realized_pnl_usd, d.fees_usd, d.funding_usd),
                    deposits_usd=usd(d.deposits_usd),
                    withdrawals_usd=usd(d.withdrawals_usd),
                )
                for d in row.days
            ],
            totals=WalletTotals(
                trade_count=t.trade_count,
                spot_volume_usd=usd(t.spot_volume_usd),
                perp_volume_usd=usd(t.perp_volume_usd),
                outcome_volume_usd=usd(t.outcome_volume_usd),
                total_volume_usd=usd(t.total_volume_usd),
                fees_usd=usd(t.fees_usd),
                realized_pnl_usd=usd(t.realized_pnl_usd),
                active_days=t.active_days,
                funding_usd=usd(t.funding_usd),
                net_pnl_usd=net_pnl(t.realized_pnl_usd, t.fees_usd, t.funding_usd),
                deposits_usd=usd(t.deposits_usd),
                withdrawals_usd=usd(t.withdrawals_usd),
            ),
            last_synced_at=row.last_synced_at,
            unpriced_fills=row.unpriced_fills,
            history_complete_from=row.complete_from,
            start=start,
            end=end,
        )


@strawberry.type(description="What trackWallets did")
class TrackWalletsResult:
    tracked: list[str] = strawberry.field(description="every address given, normalised")
    added: list[str] = strawberry.field(description="those the org did not track before")


@strawberry.enum(description="Where ingestion of a tracked wallet stands")
class SyncState(Enum):
    PENDING = strawberry.enum_value("PENDING", description="never ingested successfully yet")
    OK = strawberry.enum_value("OK", description="ingested; its last attempt succeeded")
    FAILING = strawberry.enum_value(
        "FAILING", description="its last error is newer than its last success"
    )
    TRUNCATED = strawberry.enum_value(
        "TRUNCATED",
        description="ingested, but its history goes past what Hyperliquid lets be fetched "
        "(its 10,000 most recent fills)",
    )


@strawberry.type(description="A wallet the org tracks, and where its ingestion stands")
class TrackedWallet:
    address: str = strawberry.field(description="0x followed by 40 lowercase hex digits")
    label: str | None = strawberry.field(description="the org's own label; null when none")
    tracked_at: datetime = strawberry.field(description="when the org started tracking it")
    last_synced_at: datetime | None = strawberry.field(
        description="its last successful ingest; null when none"
    )
    last_fill_at: datetime | None = strawberry.field(
        description="the time of its newest stored fill; null when none"
    )
    sync_state: SyncState = strawberry.field(
        description="PENDING, FAILING, TRUNCATED or OK, in that precedence"
    )
    last_error: str | None = strawberry.field(
        description="the error of its last failed ingest, if any"
    )
    unpriced_fills: int = strawberry.field(
        description="all its fills, all time, with a volume or fee that has no USD value"
    )
    history_complete_from: date | None = strawberry.field(description=D_COMPLETE_FROM)

    @classmethod
    def of(cls, row: dashboard.TrackedWallet) -> TrackedWallet:
        return cls(
            address=row.address,
            label=row.label,
            tracked_at=row.tracked_at,
            last_synced_at=row.last_synced_at,
            last_fill_at=row.last_fill_at,
            sync_state=SyncState(row.sync_state),
            last_error=row.last_error,
            unpriced_fills=row.unpriced_fills,
            history_complete_from=row.complete_from,
        )


@strawberry.type(description="Where a page of a connection stands (Relay)")
class PageInfo:
    has_next_page: bool = strawberry.field(description="whether more edges follow this page")
    has_previous_page: bool = strawberry.field(
        description="whether edges come before this page (true when `after` was given)"
    )
    start_cursor: str | None = strawberry.field(
        description="the cursor of the page's first edge; null when the page is empty"
    )
    end_cursor: str | None = strawberry.field(
        description="the cursor of the page's last edge, for `after`; null when empty"
    )


@strawberry.type(description="A tracked wallet and its cursor")
class TrackedWalletEdge:
    cursor: str = strawberry.field(description="pass as `after` to get the wallets after it")
    node: TrackedWallet = strawberry.field(description="the wallet")


@strawberry.type(description="A page of the org's tracked wallets, ordered by address (Relay)")
class TrackedWalletConnection:
    edges: list[TrackedWalletEdge] = strawberry.field(description="the page's wallets")
    page_info: PageInfo = strawberry.field(description="where the page stands")
    total_count: int = strawberry.field(
        description="how many of the org's wallets match the search, on every page"
    )


@strawberry.enum(description="What kind of market a coin trades in, from its spelling")
class MarketKind(Enum):
    PERP = strawberry.enum_value(
        "perp", description="a perpetual, of the default dex or a builder-deployed one"
    )
    SPOT = strawberry.enum_value("spot", description="a spot pair: @N or BASE/QUOTE")
    OUTCOME = strawberry.enum_value("outcome", description="an outcome market (HIP-4): #N")


@strawberry.type(description="One fill of a wallet, as Hyperliquid reported it, priced in USD")
class Fill:
    time: datetime = strawberry.field(description="when it happened (UTC, milliseconds)")
    coin: str = strawberry.field(description="the coin as Hyperliquid names it (@107, BTC, …)")
    display_name: str = strawberry.field(
        description="the market's name (@107 → HYPE/USDC from spotMeta); else the coin"
    )
    market: MarketKind = strawberry.field(description="the kind of market")
    dex: str | None = strawberry.field(
        description="the builder-deployed dex of a perp (xyz of xyz:TSLA); null for the default"
    )
    side: str = strawberry.field(description="B (bid, a buy) or A (ask, a sell)")
    dir: str = strawberry.field(
        description="Hyperliquid's direction (Open Long, Close Short, Buy, Settlement, …)"
    )
    px: Decimal = strawberry.field(description="price, in Hyperliquid's own digits")
    sz: Decimal = strawberry.field(description="size, in Hyperliquid's own digits")
    volume_usd: Decimal | None = strawberry.field(
        description="px × sz in USD; null when the quote token is not a USD stablecoin"
    )
    fee_usd: Decimal | None = strawberry.field(
        description="the fee in USD (negative: a rebate); null when it has no USD value"
    )
    closed_pnl_usd: Decimal | None = strawberry.field(
        description="the realized PnL in USD; null when the quote is not a USD stablecoin"
    )
    tid: str = strawberry.field(description="trade id (a string: it exceeds GraphQL's Int)")
    oid: str = strawberry.field(description="order id (a string: it exceeds GraphQL's Int)")
    hash: str = strawberry.field(description="the transaction hash")
    liquidation: bool = strawberry.field(description="whether the fill was a liquidation")

    @classmethod
    def of(cls, row: dashboard.FillRow) -> Fill:
        return cls(
            time=_EPOCH + timedelta(milliseconds=row.time_ms),
            coin=row.coin,
            display_name=row.display_name,
            market=MarketKind(row.market),
            dex=row.dex,
            side=row.side,
            dir=row.dir,
            px=row.px,
            sz=row.sz,
            volume_usd=None if row.volume_usd is None else usd(row.volume_usd),
            fee_usd=None if row.fee_usd is None else usd(row.fee_usd),
            closed_pnl_usd=None if row.closed_pnl_usd is None else usd(row.closed_pnl_usd),
            tid=str(row.tid),
            oid=str(row.oid),
            hash=row.hash,
            liquidation=row.liquidation,
        )


@strawberry.type(description="A fill and its cursor")
class FillEdge:
    cursor: str = strawberry.field(description="pass as `after` to get the fills after it")
    node: Fill = strawberry.field(description="the fill")


@strawberry.type(description="A page of a wallet's fills, newest first (Relay)")
class FillConnection:
    edges: list[FillEdge] = strawberry.field(description="the page's fills")
    page_info: PageInfo = strawberry.field(description="where the page stands")


@strawberry.type(description="Trading in one coin over a range")
class CoinMetrics:
    coin: str = strawberry.field(description="the coin as Hyperliquid names it (@107, BTC, …)")
    display_name: str = strawberry.field(
        description="the market's name (@107 → HYPE/USDC from spotMeta); else the coin"
    )
    market: MarketKind = strawberry.field(description="the kind of market")
    dex: str | None = strawberry.field(
        description="the builder-deployed dex of a perp (xyz of xyz:TSLA); null for the default"
    )
    trade_count: int = strawberry.field(description="trade fills (system fills left out)")
    volume_usd: Decimal = strawberry.field(description="volume of the trade fills, in USD")
    fees_usd: Decimal = strawberry.field(description="fees in USD (rebates negative)")
    realized_pnl_usd: Decimal = strawberry.field(description="realized PnL in USD")
    wallets: int = strawberry.field(description="wallets with at least one trade fill of it")

    @classmethod
    def of(cls, row: dashboard.CoinMetrics) -> CoinMetrics:
        return cls(
            coin=row.coin,
            display_name=row.display_name,
            market=MarketKind(row.market),
            dex=row.dex,
            trade_count=row.trade_count,
            volume_usd=usd(row.volume_usd),
            fees_usd=usd(row.fees_usd),
            realized_pnl_usd=usd(row.realized_pnl_usd),
            wallets=row.wallets,
        )


@strawberry.type(description="The org's numbers changed: query the days again")
class MetricsChange:
    days: list[date] = strawberry.field(
        description="the UTC days whose numbers changed, oldest first; empty when the change "
        "is not one day's (a wallet tracked or untracked)"
    )
    changed_at: datetime = strawberry.field(
        description="when the last change merged into this event was announced (UTC)"
    )
