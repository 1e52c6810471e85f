"""What every benchmark module shares: the result row, timing and a scratch database.

A benchmark module is `bench/bench_<topic>.py` with `run(ctx: BenchContext) ->
list[Result]`. Each figure is measured beside a baseline in the same run, and is
the median of several repetitions.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from storage import embedded
from storage.db import with_database
from storage.migrate import migrate


@dataclass(frozen=True)
class Goal:
    """What `target` says, checkable: `of` ("value" or "ratio") `op` (<, <=, >, >=) `bound`."""

    of: str
    op: str
    bound: float

    def met(self, result: Result) -> bool:
        x = result.value if self.of == "value" else result.ratio
        return {
            "<": x < self.bound,
            "<=": x <= self.bound,
            ">": x > self.bound,
            ">=": x >= self.bound,
        }[self.op]


@dataclass(frozen=True)
class Result:
    name: str
    unit: str
    value: float
    baseline: str
    baseline_value: float
    target: str
    goal: Goal | None = None  # None: informational, nothing to meet

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "unit": self.unit,
            "value": round(self.value, 4),
            "baseline": self.baseline,
            "baseline_value": round(self.baseline_value, 4),
            "ratio": round(self.ratio, 4),
            "target": self.target,
            "met": self.met,
        }


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


@dataclass
class BenchContext:
    quick: bool
    server_url: str
    _created: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return 3 if self.quick else 5

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def database(self, *, migrated: bool = True) -> str:
        """A new scratch database (migrated unless told otherwise), dropped at the end."""
        name = f"hla_bench_{os.getpid()}_{len(self._created)}"
        with psycopg.connect(with_database(self.server_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        url = with_database(self.server_url, name)
        if migrated:
            migrate(url)
        return url

    def close(self) -> None:
        with psycopg.connect(with_database(self.server_url, "postgres"), autocommit=True) as conn:
            for name in self._created:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@contextmanager
def bench_context(quick: bool) -> Iterator[BenchContext]:
    """BENCH_DATABASE_URL (or TEST_DATABASE_URL) when set, else an embedded PostgreSQL."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if not url:
        tmp = tempfile.TemporaryDirectory(prefix="hla-bench-")
        url = embedded.server_url(Path(tmp.name))
    ctx = BenchContext(quick=quick, server_url=url)
    try:
        yield ctx
    finally:
        ctx.close()
        if tmp is not None:
            embedded.stop(Path(tmp.name))
            tmp.cleanup()
