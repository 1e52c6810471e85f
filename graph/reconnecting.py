"""A LISTEN link of the API that keeps itself up: what the change and profile listeners share.

The link is opened by a `listen(database_url, on_listening)` of storage (an async
iterator of notification payloads until the link drops, calling `on_listening` with
the database's identity once LISTEN is in place); when it drops, the
database being unreachable, it is opened again after a backoff that doubles from
0.2 s to 5 s and starts over once a link holds. `listening` is set while LISTEN is
in place. Subclasses say what a (re)established link means (`_connected`: changes
may have been missed meanwhile) and what to do with each payload (`_received`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0

Listen = Callable[[str, Callable[[str], Awaitable[None]]], AsyncIterator[Any]]


class ReconnectingListener:
    task_name = "hl-listener"
    lost_action = "listener_lost"  # the log's `action` when the link drops

    def __init__(self, database_url: str, listen: Listen) -> None:
        self.database_url = database_url
        self._listen = listen
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = BACKOFF_MIN_S

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _connected(self, database: str) -> None:
        """The link to `database` (its identity) is (re)established: what may have been
        missed meanwhile is dropped."""

    async def _received(self, payload: Any) -> None:
        raise NotImplementedError

    async def _on_listening(self, database: str) -> None:
        self._backoff = BACKOFF_MIN_S
        await self._connected(database)
        self.listening.set()

    async def _run(self) -> None:
        while True:
            try:
                async for payload in self._listen(self.database_url, self._on_listening):
                    await self._received(payload)
            except DatabaseUnavailable as exc:
                self.listening.clear()
                log.warning(
                    "%s; retrying in %.1f s",
                    exc.message,
                    self._backoff,
                    extra={"action": self.lost_action},
                )
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
