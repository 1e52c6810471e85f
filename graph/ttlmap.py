"""A small map whose entries expire, bounded in size: the API's in-process caches
(verified tokens, profiles, the metric label of each request body).

When it is full, a new entry pushes out the oldest one, and the expired entries
right behind it: a burst of new keys never empties the whole map (as clearing it
would, making every known caller pay again at once).
"""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING: Literal[_Missing.MISSING] = _Missing.MISSING


class TtlMap(Generic[K, V]):
    """`put(key, value, ttl_s)` and `get(key)`; not thread-safe (one event loop uses it)."""

    def __init__(
        self,
        max_size: int,
        *,
        ttl_s: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert max_size > 0
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | Literal[_Missing.MISSING]:
        """The live value of `key`, or MISSING (a value may itself be None)."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if entry[0] <= self._clock():
            del self._entries[key]
            return MISSING
        return entry[1]

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def put(self, key: K, value: V, ttl_s: float | None = None) -> None:
        now = self._clock()
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_size:
            # The oldest entry makes room, and the expired ones right behind it go too.
            self._entries.popitem(last=False)
            while self._entries and next(iter(self._entries.values()))[0] <= now:
                self._entries.popitem(last=False)
        self._entries[key] = (now + (self.ttl_s if ttl_s is None else ttl_s), value)
