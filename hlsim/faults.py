"""Faults injected on demand: error statuses, slow answers, broken bodies, short pages.

A plan is queued (through `POST /_sim/faults` or the Python API) and spent by
the next `count` requests it matches. Several plans queue in order; the first
matching one with requests left applies.

`ShortPages` is a standing fault rather than a plan: every fill page is cut to
a random length, as Hyperliquid may answer a time range with "500 elements or
distinct blocks of data" instead of the full 2000 fills. Cuts fall anywhere,
inside a millisecond too, which is the harshest reading of the docs.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any


class InvalidFaultPlan(ValueError):
    """A fault plan has an unknown field or a value of the wrong type."""


@dataclass
class FaultPlan:
    status: int | None = None  # answer this status instead (429, 500, 400, …)
    retry_after: float | None = None  # with a 429/503: the Retry-After header, in seconds
    delay_s: float = 0.0  # answer this much later (beyond a client timeout: a timeout)
    truncate: bool = False  # cut the body in half: invalid JSON
    malformed: bool = False  # corrupt one item of a list answer, or an object's first field
    count: int = 1  # how many matching requests it applies to
    type: str | None = None  # only requests of this type
    user: str | None = None  # only requests about this wallet

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan:
        if not isinstance(data, dict):
            raise InvalidFaultPlan("a fault plan is a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise InvalidFaultPlan(
                f"unknown fault fields {sorted(unknown)}; known: {sorted(known)}"
            )
        plan = cls(**data)
        if plan.count < 1 or plan.delay_s < 0:
            raise InvalidFaultPlan("count must be >= 1 and delay_s >= 0")
        if plan.user:
            plan.user = plan.user.lower()
        return plan

    def matches(self, request_type: str, user: str | None) -> bool:
        return (self.type is None or self.type == request_type) and (
            self.user is None or self.user == (user or "").lower()
        )


class Faults:
    def __init__(self) -> None:
        self._plans: list[FaultPlan] = []
        self._lock = threading.Lock()

    def add(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plans.append(plan)

    def add_json(self, data: Any) -> FaultPlan:
        """Queues a plan given as JSON data (what `POST /_sim/faults` takes)."""
        plan = FaultPlan.from_json(data)
        self.add(plan)
        return plan

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(p) for p in self._plans]

    def take(self, request_type: str, user: str | None) -> FaultPlan | None:
        """The plan that applies to this request, if any, spending one of its uses."""
        with self._lock:
            for plan in self._plans:
                if plan.matches(request_type, user):
                    plan.count -= 1
                    if plan.count == 0:
                        self._plans.remove(plan)
                    return plan
        return None


class ShortPages:
    """Cuts each answer longer than `low` to a random length in `[low, high]` (seeded)."""

    def __init__(self, seed: int = 0, *, low: int = 500, high: int = 2000) -> None:
        if not 1 <= low <= high:
            raise ValueError("short pages need 1 <= low <= high")
        self.low, self.high = low, high
        self._rng = random.Random(f"hlsim-short-pages:{seed}")
        self._lock = threading.Lock()

    def cut(self, items: list[Any]) -> list[Any]:
        if len(items) <= self.low:
            return items
        with self._lock:
            size = self._rng.randint(self.low, self.high)
        return items[:size]
