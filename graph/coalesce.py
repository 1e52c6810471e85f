"""At most one cache invalidation per org per window, whatever the notifications' rate.

Under live ingestion an org's rollups land every few seconds, each notifying the
days it changed. The first change of an org after a quiet window is applied at
once; the ones that follow within the window are gathered (the union of their
days, or the whole org when one had no day) and applied together when the window
since the last invalidation ends. So an answer is stale at most one window plus
the notification's own delay (HL_ANALYTICS_CACHE_COALESCE_S).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import date

log = logging.getLogger(__name__)

# What to apply for an org: its changed days, or None for the whole org.
Apply = Callable[[uuid.UUID, frozenset[date] | None], Awaitable[None]]


class Coalescer:
    def __init__(self, window_s: float, apply: Apply) -> None:
        self.window_s = window_s
        self._apply = apply
        self._last: dict[uuid.UUID, float] = {}
        # Per org waiting for its window: the days gathered, None once one was org-wide.
        self._pending: dict[uuid.UUID, set[date] | None] = {}
        self._timers: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def changed(self, org_id: uuid.UUID, days: Iterable[date] | None) -> None:
        """One notification: the org's `days` changed (None: anything of the org)."""
        gathered = None if days is None else set(days)
        if org_id in self._pending:
            known = self._pending[org_id]
            self._pending[org_id] = None if known is None or gathered is None else known | gathered
            return
        wait = self._last.get(org_id, -self.window_s) + self.window_s - time.monotonic()
        if wait <= 0:
            await self._flush(org_id, gathered)
            return
        self._pending[org_id] = gathered
        self._timers[org_id] = asyncio.create_task(self._later(org_id, wait))

    async def _later(self, org_id: uuid.UUID, wait: float) -> None:
        await asyncio.sleep(wait)
        self._timers.pop(org_id, None)
        await self._flush(org_id, self._pending.pop(org_id, None))

    async def _flush(self, org_id: uuid.UUID, days: set[date] | None) -> None:
        self._last[org_id] = time.monotonic()
        try:
            await self._apply(org_id, None if days is None else frozenset(days))
        except Exception:
            log.exception("cache invalidation failed", extra={"action": "cache_error"})

    def forget(self) -> None:
        """Drops what is gathered (everything is being invalidated anyway)."""
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()
        self._pending.clear()

    async def stop(self) -> None:
        timers = list(self._timers.values())
        self.forget()
        for task in timers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
