"""The simulator's own record of every `/info` request, for measuring clients.

Rates are measured here, at the server, so a test of a cross-process rate
limiter does not trust the limiter's own account of itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

MAX_ENTRIES = 200_000


@dataclass(frozen=True)
class LoggedRequest:
    at: float  # wall-clock seconds when the request arrived
    client: str
    type: str
    user: str | None
    weight: int
    status: int


class RequestLog:
    def __init__(self) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=MAX_ENTRIES)
        self._lock = threading.Lock()

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, since: float = 0.0) -> list[LoggedRequest]:
        with self._lock:
            return [e for e in self._entries if e.at >= since]

    def as_json(self, since: float = 0.0) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries(since)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def now() -> float:
    return time.time()
