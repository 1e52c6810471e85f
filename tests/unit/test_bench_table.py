"""The benchmarks' table: fits a terminal, and a missed target is flagged."""

from __future__ import annotations

import pytest

from bench import __main__ as bench_main
from bench.common import Goal, Result
from bench.table import render

LONG = (
    "rollup: day's 10,000 pending wallet-days, 20 rollup_wallet_days jobs "
    "through a 4-thread worker (full)"
)
RESULTS = [
    Result(
        "api: cached dashboardSummary p99",
        "ms",
        21.49,
        "bare Starlette endpoint, same JSON (wrk)",
        3.2,
        "p99 < 20 ms at 64 connections",
        Goal("value", "<", 20.0),
    ),
    Result(LONG, "s", 2.3, "scan of the day's fills", 0.8, "< 5 s", Goal("value", "<", 5.0)),
    Result(
        "ingest: overlap re-fetch",
        "fills/s",
        123_456.7,
        "raw COPY into a scratch table",
        234_567.1,
        "informational: what the overlap costs",
    ),
]


def test_the_table_fits_a_terminal_and_flags_a_missed_target() -> None:
    table = render(RESULTS)
    assert max(len(line) for line in table.splitlines()) <= 100
    rows = table.splitlines()
    assert rows[2].startswith("api: cached dashboardSummary") and rows[2].endswith("MISSED")
    assert any(line.endswith(" met") for line in rows)
    assert "1 of 2 targets MISSED:" in table
    assert "[1] bare Starlette endpoint, same JSON (wrk)" in table
    # every word of a long name is still there, wrapped
    assert " ".join(table.split()).count("through a 4-thread worker") == 1


@pytest.mark.parametrize(("goal", "value", "met"), [(Goal("ratio", ">=", 1.0), 2.0, True)])
def test_goal_of_a_ratio(goal: Goal, value: float, met: bool) -> None:
    assert Result("x", "s", value, "b", 2.0, "t", goal).met is met
    assert Result("x", "s", value, "b", 2.0, "t", goal).as_json()["met"] is met


def test_a_missed_target_fails_a_full_run_only() -> None:
    assert bench_main.exit_code(RESULTS, quick=False) == 1
    assert bench_main.exit_code(RESULTS, quick=True) == 0
    assert bench_main.exit_code(RESULTS[1:], quick=False) == 0
