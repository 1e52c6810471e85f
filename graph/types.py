"""The GraphQL types of DESIGN.md's schema (the contract), plus `wallet` and the mutations.

Field names are snake_case here and camelCase in the schema (Strawberry's
default). `Decimal` is an exact decimal string: `graph.schema` maps Python's
Decimal to a scalar that never uses exponent notation.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum

import strawberry

from storage import dashboard


@strawberry.enum
class MetricsRange(Enum):
    D7 = "D7"
    D30 = "D30"
    D90 = "D90"


@strawberry.enum
class WalletOrder(Enum):
    VOLUME = "VOLUME"
    TRADES = "TRADES"
    PNL = "PNL"
    FEES = "FEES"


@strawberry.type
class DayMetrics:
    day: date
    dau: int
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    avg_volume_per_user: Decimal = strawberry.field(
        description="totalVolumeUsd / dau, 2 decimals; 0 when dau = 0"
    )

    @classmethod
    def of(cls, row: dashboard.DayMetrics) -> DayMetrics:
        return cls(
            day=row.day,
            dau=row.dau,
            trade_count=row.trade_count,
            spot_volume_usd=row.spot_volume_usd,
            perp_volume_usd=row.perp_volume_usd,
            outcome_volume_usd=row.outcome_volume_usd,
            total_volume_usd=row.total_volume_usd,
            fees_usd=row.fees_usd,
            realized_pnl_usd=row.realized_pnl_usd,
            avg_volume_per_user=row.avg_volume_per_user,
        )


@strawberry.type
class DashboardSummary:
    day: date | None = strawberry.field(
        description="latest UTC day with any fill of the org; null if none"
    )
    latest: DayMetrics | None = strawberry.field(description="that day")
    previous: DayMetrics | None = strawberry.field(
        description="the day before it (zeros if no activity)"
    )
    tracked_wallets: int
    last_synced_at: datetime | None = strawberry.field(
        description="newest successful ingest among the org's wallets"
    )

    @classmethod
    def of(cls, row: dashboard.Summary) -> DashboardSummary:
        return cls(
            day=row.day,
            latest=DayMetrics.of(row.latest) if row.latest else None,
            previous=DayMetrics.of(row.previous) if row.previous else None,
            tracked_wallets=row.tracked_wallets,
            last_synced_at=row.last_synced_at,
        )


@strawberry.type
class WalletRank:
    rank: int
    address: str
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    active_days: int

    @classmethod
    def of(cls, row: dashboard.WalletRank) -> WalletRank:
        return cls(
            rank=row.rank,
            address=row.address,
            trade_count=row.trade_count,
            spot_volume_usd=row.spot_volume_usd,
            perp_volume_usd=row.perp_volume_usd,
            outcome_volume_usd=row.outcome_volume_usd,
            total_volume_usd=row.total_volume_usd,
            fees_usd=row.fees_usd,
            realized_pnl_usd=row.realized_pnl_usd,
            active_days=row.active_days,
        )


@strawberry.type
class WalletDay:
    day: date
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal
    realized_pnl_usd: Decimal


@strawberry.type
class WalletTotals:
    trade_count: int
    spot_volume_usd: Decimal
    perp_volume_usd: Decimal
    outcome_volume_usd: Decimal
    total_volume_usd: Decimal = strawberry.field(
        description="spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"
    )
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    active_days: int


@strawberry.type(description="One tracked wallet over a range: a zero-filled day series and totals")
class WalletMetrics:
    address: str
    days: list[WalletDay]
    totals: WalletTotals
    last_synced_at: datetime | None
    unpriced_fills: int = strawberry.field(
        description="fills over these days with a volume or fee that has no USD value "
        "(quote or fee token not a USD stablecoin): left out of the USD amounts"
    )

    @classmethod
    def of(cls, row: dashboard.WalletSeries) -> WalletMetrics:
        t = row.totals
        return cls(
            address=row.address,
            days=[
                WalletDay(
                    day=d.day,
                    trade_count=d.trade_count,
                    spot_volume_usd=d.spot_volume_usd,
                    perp_volume_usd=d.perp_volume_usd,
                    outcome_volume_usd=d.outcome_volume_usd,
                    total_volume_usd=d.total_volume_usd,
                    fees_usd=d.fees_usd,
                    realized_pnl_usd=d.realized_pnl_usd,
                )
                for d in row.days
            ],
            totals=WalletTotals(
                trade_count=t.trade_count,
                spot_volume_usd=t.spot_volume_usd,
                perp_volume_usd=t.perp_volume_usd,
                outcome_volume_usd=t.outcome_volume_usd,
                total_volume_usd=t.total_volume_usd,
                fees_usd=t.fees_usd,
                realized_pnl_usd=t.realized_pnl_usd,
                active_days=t.active_days,
            ),
            last_synced_at=row.last_synced_at,
            unpriced_fills=row.unpriced_fills,
        )


@strawberry.type
class TrackWalletsResult:
    tracked: list[str] = strawberry.field(description="every address given, normalised")
    added: list[str] = strawberry.field(description="those the org did not track before")
