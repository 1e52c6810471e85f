"""The scheduler's plan for funding and snapshots: intervals, and their stretch to fit
each kind's share of the request budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs import plan_kinds
from storage.kind_cursor import KindScheduleRow

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


def rows(count: int, ago_s: float | None) -> list[KindScheduleRow]:
    at = None if ago_s is None else NOW - timedelta(seconds=ago_s)
    return [KindScheduleRow(i, f"0x{i:040x}", at) for i in range(count)]


def test_funding_is_due_hourly_and_never_asked_wallets_at_once() -> None:
    assert len(plan_kinds.plan_funding(rows(5, None), NOW, 1.0).due) == 5
    assert plan_kinds.plan_funding(rows(5, 3599), NOW, 1.0).due == []
    assert len(plan_kinds.plan_funding(rows(5, 3600), NOW, 1.0).due) == 5


def test_funding_is_stretched_to_a_tenth_of_the_budget() -> None:
    # 720 wallets hourly = 0.2 requests/s; a tenth of 1/s is 0.1: every 2 hours instead.
    plan = plan_kinds.plan_funding(rows(720, 5000), NOW, 1.0)
    assert plan.stretch == 2.0 and plan.due == []
    assert len(plan_kinds.plan_funding(rows(720, 7200), NOW, 1.0).due) == 720


def test_snapshots_every_ten_minutes_within_a_fifth_of_the_budget() -> None:
    assert len(plan_kinds.plan_positions(rows(3, 600), NOW, 1.0).due) == 3
    assert plan_kinds.plan_positions(rows(3, 599), NOW, 1.0).due == []
    # 0.2 slots a snapshot: 600 wallets every 10 minutes fit a fifth of 1 slot/s.
    assert plan_kinds.plan_positions(rows(600, 600), NOW, 1.0).stretch == 1.0
    assert plan_kinds.plan_positions(rows(1200, 600), NOW, 1.0).stretch == 2.0


def test_ledger_every_six_hours_within_a_twentieth_of_the_budget() -> None:
    assert plan_kinds.plan_ledger(rows(4, 6 * 3600 - 1), NOW, 1.0).due == []
    assert len(plan_kinds.plan_ledger(rows(4, 6 * 3600), NOW, 1.0).due) == 4
    # 1,080 wallets every 6 hours = 0.05 requests/s: a twentieth of 1/s, no stretch.
    assert plan_kinds.plan_ledger(rows(1080, 0), NOW, 1.0).stretch == 1.0
    assert plan_kinds.plan_ledger(rows(2160, 0), NOW, 1.0).stretch == 2.0
