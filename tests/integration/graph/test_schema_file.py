"""graph/schema.graphql is what the code declares, and keeps the public contract."""

from __future__ import annotations

import re

import pytest

from graph.schema import SDL_PATH, sdl

CONTRACT = [
    "enum MetricsRange {\n  D7\n  D30\n  D90\n}",
    # NET_PNL and FUNDING added by issue 16, after the original four.
    "enum WalletOrder {\n  VOLUME\n  TRADES\n  PNL\n  FEES\n  NET_PNL\n  FUNDING\n}",
    "dashboardSummary: DashboardSummary!",
    "globalMetrics(\n    range: MetricsRange! = D30\n",
    "topWallets(\n    range: MetricsRange! = D30\n    limit: Int! = 20\n"
    "    orderBy: WalletOrder! = VOLUME\n",
    "  ): [DayMetrics!]!",
    "  ): [WalletRank!]!",
    # Added by issue 17: any UTC days, inclusive; `range` keeps its meaning.
    "input DateRange {",
    "between: DateRange = null",
    "scalar Date",
    "scalar DateTime",
    "scalar Decimal",
]
DAY_METRICS = """day: Date!
  dau: Int!
  tradeCount: Int!
  spotVolumeUsd: Decimal!
  perpVolumeUsd: Decimal!
  outcomeVolumeUsd: Decimal!
  totalVolumeUsd: Decimal!
  feesUsd: Decimal!
  realizedPnlUsd: Decimal!"""
WALLET_RANK = """rank: Int!
  address: String!
  tradeCount: Int!
  spotVolumeUsd: Decimal!
  perpVolumeUsd: Decimal!
  outcomeVolumeUsd: Decimal!
  totalVolumeUsd: Decimal!
  feesUsd: Decimal!
  realizedPnlUsd: Decimal!
  activeDays: Int!"""


def bare(text: str) -> str:
    """The SDL without its descriptions (every type, field and argument has one)."""
    text = re.sub(r'^[ \t]*"""(?:.|\n)*?"""\n', "", text, flags=re.M)
    return re.sub(r"\n\n(?=[ \t])", "\n", text)


def test_committed_sdl_matches_the_code() -> None:
    assert SDL_PATH.read_text() == sdl(), (
        "graph/schema.graphql is out of date: run `python -m graph.schema` and commit it"
    )


def test_contract_of_design() -> None:
    text = bare(sdl())
    for item in [*CONTRACT, DAY_METRICS, WALLET_RANK]:
        assert item in text, item
    assert "avgVolumePerUser: Decimal!" in text
    # Issue 16: funding, net PnL, deposits and withdrawals on every type that has
    # realizedPnlUsd.
    for kind in ("DayMetrics", "WalletRank", "WalletDay", "WalletTotals"):
        body = text.split(f"type {kind} {{", 1)[1].split("}", 1)[0]
        for name in ("fundingUsd", "netPnlUsd", "depositsUsd", "withdrawalsUsd"):
            assert f"{name}: Decimal!" in body, (kind, name)
    assert "exactly 6 decimal places, rounded half-even" in sdl()
    assert '"""spotVolumeUsd + perpVolumeUsd + outcomeVolumeUsd"""' in sdl()
    for name in ("day: Date", "latest: DayMetrics", "previous: DayMetrics"):
        assert name in text
    assert "trackedWallets: Int!" in text
    assert "lastSyncedAt: DateTime" in text


def test_decimal_scalar_is_fixed_point() -> None:
    from decimal import Decimal

    from graph.schema import _parse_decimal, _serialize_decimal

    # NUMERIC zeros of some scale come back from psycopg as Decimal("0E-10").
    assert _serialize_decimal(Decimal("0E-10")) == "0.0000000000"
    assert _serialize_decimal(Decimal("1E+3")) == "1000"
    assert _serialize_decimal(Decimal("-0.01")) == "-0.01"
    assert _parse_decimal("12.340") == Decimal("12.340")
    for bad in ("abc", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            _parse_decimal(bad)
