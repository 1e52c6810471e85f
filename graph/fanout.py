"""One instance's change notifications, fanned out to its live subscriptions, per org.

The change listener (`graph/listener.py`) hands every `hl_metrics_changed`
notification to `Hub.changed`. A burst of rollups (one notification per org-day)
must not become a burst of events: an org's changes are coalesced into at most
one event per `window_s` (a second), the first one at once, the rest merged
(their days united) and sent when the window has passed. When the listener's link
comes back after a gap, every org with feeds gets an event without days. Only orgs with an open
feed are tracked, so the hub's memory follows the open subscriptions, not the
orgs that trade.

Each subscription reads its own bounded `Feed`. A feed that is full when an event
arrives belongs to a client that stopped reading (the socket's sends block once
its TCP buffers are full): the feed is marked overflowed and its owner is told,
which disconnects it, instead of buffering events without bound.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from hl_core import telemetry
from storage.changes import Change

WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class Event:
    """What a `metricsChanged` subscriber receives: the org's changed days, merged."""

    org_id: uuid.UUID
    days: tuple[date, ...]
    changed_at: datetime


class Feed:
    """One subscription's queue of the events of its org."""

    def __init__(self, hub: Hub, org_id: uuid.UUID, size: int, on_overflow: Callable[[], None]):
        self.hub = hub
        self.org_id = org_id
        self.overflowed = False
        self._queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self._on_overflow = on_overflow

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()
            self._on_overflow()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        self.hub.remove(self)


class Hub:
    def __init__(self, queue_size: int, *, window_s: float = WINDOW_S) -> None:
        self.queue_size = queue_size
        self.window_s = window_s
        self._feeds: dict[uuid.UUID, set[Feed]] = {}
        # Per org with feeds: the days waiting to be sent, when the last event went
        # out, and the timer that sends the waiting ones.
        self._pending: dict[uuid.UUID, set[date]] = {}
        self._changed_at: dict[uuid.UUID, datetime] = {}
        self._last_sent: dict[uuid.UUID, float] = {}
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._gauge = telemetry.live_metrics().subscriptions

    def open(self, org_id: uuid.UUID, on_overflow: Callable[[], None]) -> Feed:
        feed = Feed(self, org_id, self.queue_size, on_overflow)
        self._feeds.setdefault(org_id, set()).add(feed)
        self._gauge.inc()
        return feed

    def remove(self, feed: Feed) -> None:
        feeds = self._feeds.get(feed.org_id)
        if feeds is None or feed not in feeds:
            return
        feeds.discard(feed)
        self._gauge.dec()
        if not feeds:
            del self._feeds[feed.org_id]
            self._forget(feed.org_id)

    def _forget(self, org_id: uuid.UUID) -> None:
        self._pending.pop(org_id, None)
        self._changed_at.pop(org_id, None)
        self._last_sent.pop(org_id, None)
        timer = self._timers.pop(org_id, None)
        if timer is not None:
            timer.cancel()

    def feeds(self, org_id: uuid.UUID) -> int:
        return len(self._feeds.get(org_id, ()))

    def changed(self, change: Change) -> None:
        """The listener's hook: one notification of an org's change."""
        org_id = change.org_id
        if org_id not in self._feeds:
            return
        pending = self._pending.setdefault(org_id, set())
        if change.day is not None:
            pending.add(change.day)
        self._changed_at[org_id] = datetime.now(UTC)
        if org_id in self._timers:
            return
        now = time.monotonic()
        wait = max(0.0, self._last_sent.get(org_id, float("-inf")) + self.window_s - now)
        loop = asyncio.get_running_loop()
        self._timers[org_id] = loop.call_later(wait, self._send, org_id)

    def reconnected(self) -> None:
        """The listener's link came back: notifications may have been missed, so every
        org with feeds gets an event (without days: anything may have changed)."""
        for org_id in list(self._feeds):
            self.changed(Change(org_id, None))

    def _send(self, org_id: uuid.UUID) -> None:
        self._timers.pop(org_id, None)
        days = self._pending.pop(org_id, set())
        changed_at = self._changed_at.pop(org_id, datetime.now(UTC))
        if org_id not in self._feeds:
            return
        self._last_sent[org_id] = time.monotonic()
        self.publish(Event(org_id, tuple(sorted(days)), changed_at))

    def publish(self, event: Event) -> None:
        """Offers the event to every feed of its org, at once (no coalescing)."""
        for feed in list(self._feeds.get(event.org_id, ())):
            feed.offer(event)
