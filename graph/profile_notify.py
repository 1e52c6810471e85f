"""Profile changes reach every API instance at once.

`Callers` keeps profiles (`sub` → org and role) for a few seconds so that cached
answers need no database. Without more, a user deleted, moved to another org or
demoted kept the old access for up to that long on every instance. Migration
0011 makes PostgreSQL announce each change of `user_profiles` on
`hl_profiles_changed`; this listener makes `Callers` forget that user. When the
link is (re)established every cached profile is forgotten, since changes may
have been missed meanwhile; it reconnects on its own with backoff. The `on_change`
hooks hear of each change too (user id; "" for "anyone"): live subscriptions
(`graph/subscriptions.py`) check that their user still has the access they began with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from graph.auth import Callers
from storage.errors import DatabaseUnavailable
from storage.notify import listen_profiles

log = logging.getLogger(__name__)
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0


class ProfileListener:
    def __init__(self, database_url: str, callers: Callers) -> None:
        self.database_url = database_url
        self.callers = callers
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = BACKOFF_MIN_S
        self.on_change: list[Callable[[str], None]] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hl-profiles-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _on_listening(self) -> None:
        self._backoff = BACKOFF_MIN_S
        self.callers.forget_all()
        for hook in self.on_change:
            hook("")
        self.listening.set()
        log.info("listening for profile changes", extra={"action": "profile_listener_started"})

    async def _run(self) -> None:
        while True:
            try:
                async for user_id in listen_profiles(self.database_url, self._on_listening):
                    if user_id:
                        self.callers.forget(user_id)
                    else:
                        self.callers.forget_all()
                    for hook in self.on_change:
                        hook(user_id)
            except DatabaseUnavailable as exc:
                self.listening.clear()
                log.warning(
                    "%s; retrying in %.1f s",
                    exc.message,
                    self._backoff,
                    extra={"action": "profile_listener_lost"},
                )
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
