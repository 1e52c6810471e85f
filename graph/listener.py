"""Keeps the response cache honest: LISTEN for `hl_metrics_changed` and drop that org's answers.

The pipeline's rollup notifies with the org id and the day when an org-day's
numbers change (other changes: the org id alone). Notifications are coalesced
per org (graph/coalesce.py, HL_ANALYTICS_CACHE_COALESCE_S): at most one
invalidation per org per window, hiding only the answers that read a changed
day. The link reconnects on its own (with backoff); after any gap every answer
this instance cached is dropped, since a notification may have been missed.
Each change is also handed to the `on_change` hooks (the subscriptions' fan-out,
`graph/subscriptions.py`) as it arrives, not coalesced: one LISTEN connection per
instance serves them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import date

from graph.cache import ResponseCache
from graph.coalesce import Coalescer
from storage import changes
from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0
DEFAULT_COALESCE_S = 2.0  # HL_ANALYTICS_CACHE_COALESCE_S


class ChangeListener:
    def __init__(
        self, database_url: str, cache: ResponseCache, coalesce_s: float = DEFAULT_COALESCE_S
    ) -> None:
        self.database_url = database_url
        self.cache = cache
        self.coalescer = Coalescer(coalesce_s, self._invalidate)
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = BACKOFF_MIN_S
        self.on_change: list[Callable[[changes.Change], None]] = []
        # Called when the link is (re)established: changes may have been missed.
        self.on_reconnect: list[Callable[[], None]] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hl-metrics-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.coalescer.stop()

    async def _invalidate(self, org_id: uuid.UUID, days: frozenset[date] | None) -> None:
        if days is None:
            await self.cache.invalidate(org_id)
        else:
            await self.cache.invalidate_days(org_id, days)

    async def _on_listening(self) -> None:
        self._backoff = BACKOFF_MIN_S
        self.coalescer.forget()
        await self.cache.invalidate_all()
        for hook in self.on_reconnect:
            hook()
        self.listening.set()
        log.info("listening for metric changes", extra={"action": "listener_started"})

    async def _changed(self, payload: str) -> None:
        try:
            change = changes.parse_change(payload)
        except ValueError:
            await self.cache.invalidate_all()
            return
        for hook in self.on_change:
            hook(change)
        await self.coalescer.changed(change.org_id, None if change.day is None else [change.day])

    async def _run(self) -> None:
        while True:
            try:
                async for payload in changes.listen_changes(self.database_url, self._on_listening):
                    await self._changed(payload)
            except DatabaseUnavailable as exc:
                self.listening.clear()
                log.warning(
                    "%s; retrying in %.1f s",
                    exc.message,
                    self._backoff,
                    extra={"action": "listener_lost"},
                )
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
