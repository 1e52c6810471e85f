"""The scheduler's polling policy: recent traders more often, within the request budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs import polling
from storage.cursor import ScheduleRow

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
MINUTE_MS = 60_000


def row(n: int, last_fill_ago_ms: int | None, attempted_ago_s: float | None) -> ScheduleRow:
    return ScheduleRow(
        n,
        f"0x{n:040x}",
        None if last_fill_ago_ms is None else NOW_MS - last_fill_ago_ms,
        None if attempted_ago_s is None else NOW - timedelta(seconds=attempted_ago_s),
    )


def test_intervals_by_recent_activity() -> None:
    assert polling.interval_s(NOW_MS - 5 * MINUTE_MS, NOW_MS) == 60
    assert polling.interval_s(NOW_MS - 3 * 60 * MINUTE_MS, NOW_MS) == 600
    assert polling.interval_s(NOW_MS - 3 * 24 * 60 * MINUTE_MS, NOW_MS) == 3600
    assert polling.interval_s(NOW_MS - 30 * 24 * 60 * MINUTE_MS, NOW_MS) == 6 * 3600
    assert polling.interval_s(None, NOW_MS) == 6 * 3600


def test_due_wallets() -> None:
    rows = [
        row(1, None, None),  # never ingested: at once
        row(2, 5 * MINUTE_MS, 61),  # hot, last try 61 s ago: due
        row(3, 5 * MINUTE_MS, 30),  # hot, 30 s ago: not yet
        row(4, None, 3600),  # dormant, 1 h ago: not yet
        row(5, None, 7 * 3600),  # dormant, 7 h ago: due
    ]
    plan = polling.plan(rows, NOW, rps=10)
    assert [r.wallet_id for r in plan.due] == [1, 2, 5]
    assert plan.stretch == 1.0


def test_over_budget_stretches_every_interval() -> None:
    # 100 hot wallets plan 100/60 requests/s; at 1 request/s half of it is 0.5.
    rows = [row(n, MINUTE_MS, 90) for n in range(100)]
    plan = polling.plan(rows, NOW, rps=1)
    assert abs(plan.planned_rps - 100 / 60) < 1e-9
    assert abs(plan.stretch - (100 / 60) / 0.5) < 1e-9
    assert plan.due == []  # 90 s ago < 60 s × 3.33
    later = polling.plan([row(n, MINUTE_MS, 201) for n in range(100)], NOW, rps=1)
    assert len(later.due) == 100


def test_a_wallet_flagged_for_a_history_reread_is_due_every_minute_until_done() -> None:
    dormant = ScheduleRow(1, f"0x{1:040x}", NOW_MS - 90 * 24 * 60 * MINUTE_MS, NOW, True)
    assert polling.plan([dormant], NOW + timedelta(seconds=30), rps=1).due == []
    assert polling.plan([dormant], NOW + timedelta(seconds=61), rps=1).due == [dormant]


def test_interleave_takes_each_key_in_turn() -> None:
    rows = ["a1", "a2", "a3", "a4", "b1", "c1", "c2"]
    assert polling.interleave(rows, lambda r: r[0]) == ["a1", "b1", "c1", "a2", "c2", "a3", "a4"]
