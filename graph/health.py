"""`/healthz` and `/readyz`: cheap, and unable to load the database.

- `/healthz` (liveness) is 200 while the process can serve. It fails (503) once
  the request pool has been unable to hand out a connection for
  HL_ANALYTICS_HEALTH_STALL_S seconds, confirmed by one more borrow attempt (a
  burst long past must not restart an idle instance), so an orchestrator
  restarts an instance whose pool is stuck.
- `/readyz` (readiness) is 200 when the database answers and the change
  listener is in place. Without the listener the instance could not keep its
  response cache honest, and its first LISTEN drops every cached answer (in
  Redis, every instance's), so it takes no traffic before that. The answer is
  computed at most once every READY_CACHE_S, on a connection of its own
  (`storage/probe.py`), never borrowed from the request pool; concurrent checks
  share one probe.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from storage.errors import DatabaseUnavailable
from storage.lending import GuardedPool
from storage.probe import DatabaseProbe

READY_TIMEOUT_S = 2.0
READY_CACHE_S = 1.0
CONFIRM_TIMEOUT_S = 1.0


class Health:
    def __init__(
        self,
        pool: GuardedPool,
        database_url: str,
        stall_s: float,
        listening: asyncio.Event | None = None,
    ) -> None:
        self.pool = pool
        self.listening = listening
        self.stall_s = stall_s
        self.probe = DatabaseProbe(
            database_url, timeout=READY_TIMEOUT_S, application_name="hl-analytics-api"
        )
        self.probes = 0  # how many times the database was asked (tests, docs)
        self._ready: tuple[float, str | None] | None = None  # (when, reason not ready)
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.probe.close()

    async def stalled(self) -> float:
        """Seconds the pool has been stuck, confirmed by a borrow; 0 when it is not."""
        stalled = self.pool.stalled_for()
        if stalled < self.stall_s:
            return 0.0
        try:
            conn = await self.pool.getconn(CONFIRM_TIMEOUT_S)
        except Exception:
            return self.pool.stalled_for()
        await self.pool.putconn(conn)
        return 0.0

    async def healthz(self, request: Request) -> JSONResponse:
        stalled = await self.stalled()
        if stalled:
            reason = f"no database connection could be borrowed for {stalled:.0f} s"
            return JSONResponse({"status": "stalled", "reason": reason}, 503)
        return JSONResponse({"status": "ok"})

    async def not_ready(self) -> str | None:
        """Why the database cannot serve (None: it can), at most READY_CACHE_S old."""
        async with self._lock:
            if self._ready is None or time.monotonic() - self._ready[0] >= READY_CACHE_S:
                self.probes += 1
                try:
                    await self.probe.ping()
                    reason = None
                except DatabaseUnavailable as exc:
                    reason = exc.message
                self._ready = (time.monotonic(), reason)
            listening = self.listening is None or self.listening.is_set()
            if self._ready[1] is None and not listening:
                return "not listening for metric changes yet; retry shortly"
            return self._ready[1]

    async def readyz(self, request: Request) -> JSONResponse:
        reason = await self.not_ready()
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, 503)
        return JSONResponse({"status": "ready"})
