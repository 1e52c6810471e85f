"""The in-memory response cache's store: bounded by bytes, least recently used first out.

aiocache's SimpleMemoryCache has no size limit: 300 distinct answers of 465 KB
took an API process from 95 to 195 MB, and nothing stopped it going on. This
store keeps at most `max_bytes` of keys and answers (HL_ANALYTICS_CACHE_MAX_BYTES):
storing past the bound drops the least recently used entries, and an answer
larger than the whole bound is not stored. Entries also expire after their TTL.
It offers the three calls the response cache makes of its memory backend.
"""

from __future__ import annotations

import time
from collections import OrderedDict

# What an entry costs beyond its key and answer (the tuple, the dict slot, the bytes
# object's header): a rough constant, so many tiny answers are bounded too.
ENTRY_OVERHEAD = 200


class BoundedMemoryCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _size(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= self._size(key, value)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        size = self._size(key, value)
        if key in self._entries:
            self._drop(key)
        if size > self.max_bytes:
            return False
        expires = time.monotonic() + ttl if ttl is not None else float("inf")
        self._entries[key] = (expires, value)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0
