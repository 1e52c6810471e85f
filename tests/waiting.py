"""Waiting in tests for something another thread, process or server does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

INTERVAL_S = 0.05


def wait_until(
    check: Callable[[], object],
    # Generous: a condition that holds ends the wait at once, and a loaded 2-core
    # machine can take many times longer than a quiet one.
    timeout_s: float = 30.0,
    what: str = "condition",
    *,
    interval_s: float = INTERVAL_S,
) -> None:
    """Returns once `check()` is true; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


async def eventually(
    check: Callable[[], Awaitable[object]],
    timeout_s: float = 20.0,
    what: str = "condition",
    *,
    interval_s: float = INTERVAL_S,
) -> None:
    """`wait_until` for an async check, without blocking the event loop."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)
