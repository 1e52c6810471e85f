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

import logging
import uuid
from collections.abc import Callable
from datetime import date

from graph.cache import ResponseCache
from graph.coalesce import Coalescer
from graph.reconnecting import ReconnectingListener
from storage import changes

log = logging.getLogger(__name__)
DEFAULT_COALESCE_S = 2.0  # HL_ANALYTICS_CACHE_COALESCE_S


class ChangeListener(ReconnectingListener):
    task_name = "hl-metrics-listener"
    lost_action = "listener_lost"

    def __init__(
        self, database_url: str, cache: ResponseCache, coalesce_s: float = DEFAULT_COALESCE_S
    ) -> None:
        super().__init__(database_url, changes.listen_changes)
        self.cache = cache
        self.coalescer = Coalescer(coalesce_s, self._invalidate)
        self.on_change: list[Callable[[changes.Change], None]] = []
        # Called when the link is (re)established: changes may have been missed.
        self.on_reconnect: list[Callable[[], None]] = []

    async def stop(self) -> None:
        await super().stop()
        await self.coalescer.stop()

    async def _invalidate(self, org_id: uuid.UUID, days: frozenset[date] | None) -> None:
        if days is None:
            await self.cache.invalidate(org_id)
        else:
            await self.cache.invalidate_days(org_id, days)

    async def _connected(self, database: str) -> None:
        self.coalescer.forget()
        await self.cache.invalidate_all(database)
        for hook in self.on_reconnect:
            hook()
        log.info("listening for metric changes", extra={"action": "listener_started"})

    async def _received(self, payload: str) -> None:
        try:
            change = changes.parse_change(payload)
        except ValueError:
            await self.cache.invalidate_all()
            return
        for hook in self.on_change:
            hook(change)
        await self.coalescer.changed(change.org_id, None if change.day is None else [change.day])
