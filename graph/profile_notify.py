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

import logging
from collections.abc import Callable

from graph.auth import Callers
from graph.reconnecting import ReconnectingListener
from storage.notify import listen_profiles

log = logging.getLogger(__name__)


class ProfileListener(ReconnectingListener):
    task_name = "hl-profiles-listener"
    lost_action = "profile_listener_lost"

    def __init__(self, database_url: str, callers: Callers) -> None:
        super().__init__(database_url, listen_profiles)
        self.callers = callers
        self.on_change: list[Callable[[str], None]] = []

    async def _connected(self, database: str) -> None:
        self.callers.forget_all()
        for hook in self.on_change:
            hook("")
        log.info("listening for profile changes", extra={"action": "profile_listener_started"})

    async def _received(self, payload: str) -> None:
        if payload:
            self.callers.forget(payload)
        else:
            self.callers.forget_all()
        for hook in self.on_change:
            hook(payload)
