"""The embedded default database: a private PostgreSQL from the `pgserver` wheel.

pgserver was chosen because it ships real PostgreSQL binaries inside a wheel
(nothing to install on the machine) and already coordinates several processes
on one data folder: each process that opens the folder registers itself, the
first starts the server, later ones reuse it, and the last one out stops it.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path
from typing import Any

from hl_core.errors import HLAnalyticsError
from hl_core.settings import Settings
from storage.db import with_database

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "hl_analytics"
START_ATTEMPTS = 3
PG_CTL_TIMEOUT_S = 120
_servers: dict[Path, Any] = {}


class EmbeddedDatabaseError(HLAnalyticsError):
    """The embedded PostgreSQL could not be started: check the data folder, or set DATABASE_URL."""


def start(data_dir: Path) -> Any:
    """Starts (or joins) the embedded server whose data lives in `data_dir / "pg"`."""
    pgdata = (data_dir / "pg").resolve()
    if pgdata in _servers:
        return _servers[pgdata]
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedDatabaseError(
            f"the embedded PostgreSQL cannot use {pgdata.parent} ({exc.strerror or exc}); "
            "pick another data folder, or set DATABASE_URL"
        ) from None
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from pgserver import postgres_server
    _patient_pg_ctl(postgres_server)
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            server = postgres_server.get_server(pgdata, cleanup_mode="stop")
            break
        except Exception as exc:
            # pgserver keeps the instance that failed: drop it so that a retry starts anew
            # (or joins a server that came up after all).
            postgres_server.PostgresServer._instances.pop(pgdata, None)
            _clear_stale_pid_file(pgdata)
            if attempt == START_ATTEMPTS:
                raise EmbeddedDatabaseError(
                    f"the embedded PostgreSQL in {pgdata} did not start ({exc}); "
                    "remove the folder to start over, or set DATABASE_URL"
                ) from None
            log.warning(
                "the embedded PostgreSQL did not start (%s); trying again",
                exc,
                extra={"action": "embedded_db_retry", "attempt": attempt},
            )
            time.sleep(1.0)
    _servers[pgdata] = server
    log.debug(
        "embedded PostgreSQL ready", extra={"action": "embedded_db_ready", "pgdata": str(pgdata)}
    )
    return server


def _postmaster_pid(pgdata: Path) -> int | None:
    """The first line of postmaster.pid: the server's pid, or minus the pid of a
    single-user backend (initdb's bootstrap writes one); None when there is none."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _clear_stale_pid_file(pgdata: Path) -> None:
    """A postmaster.pid whose process is gone (a backend killed before it could remove
    it, as a loaded machine's interrupted initdb leaves) fails every later start:
    pgserver reads it as a server's and cannot parse it. PostgreSQL itself overwrites
    such a file; so do we, after waiting for a single-user backend that is still alive."""
    pid = _postmaster_pid(pgdata)
    if not pid:
        return
    deadline = time.monotonic() + PG_CTL_TIMEOUT_S
    while pid < 0 and _pid_alive(-pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _pid_alive(abs(pid)):
        with contextlib.suppress(FileNotFoundError):
            (pgdata / "postmaster.pid").unlink()
            log.warning(
                "removed a stale postmaster.pid (process %d is gone)",
                abs(pid),
                extra={"action": "embedded_db_stale_pid", "pgdata": str(pgdata)},
            )


def _patient_pg_ctl(module: Any) -> None:
    """pgserver gives `pg_ctl start` 10 s, which a busy machine can exceed while the
    server is still coming up (and `pg_ctl -w` waits up to its own 60 s anyway):
    its calls get PG_CTL_TIMEOUT_S instead."""
    original = module.pg_ctl
    if getattr(original, "patient", False):
        return

    def pg_ctl(args: list[str], pgdata: Path | None = None, **kwargs: Any) -> str:
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = max(kwargs["timeout"], PG_CTL_TIMEOUT_S)
        result: str = original(args, pgdata=pgdata, **kwargs)
        return result

    pg_ctl.patient = True  # type: ignore[attr-defined]
    module.pg_ctl = pg_ctl


def server_url(data_dir: Path, database: str = "postgres") -> str:
    return with_database(str(start(data_dir).get_uri()), database)


def ensure_database(admin_url: str, name: str) -> None:
    """Creates database `name` unless it exists (CREATE DATABASE has no IF NOT EXISTS)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        # another process may create it meanwhile
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_url(settings: Settings) -> str:
    """DATABASE_URL when set; otherwise the embedded server's URL (started on demand)."""
    if settings.database_url:
        return settings.database_url
    ensure_database(server_url(settings.data_dir), EMBEDDED_DATABASE)
    return server_url(settings.data_dir, EMBEDDED_DATABASE)


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def abandon(pgdata: Path, pid: int) -> None:
    """After process `pid` died holding the server without releasing it (the demo's
    guardian calls this): drops its handle and those of every process no longer
    alive, and stops the server (a fast shutdown) when no living process holds it."""
    import os
    import signal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import DiskList

    with PostgresServer._lock:
        handles = DiskList(pgdata / ".handle_pids.json")
        left = [p for p in handles.get() if p != pid and _pid_alive(p)]
        handles.put(left)
        if left:
            return
        postmaster = _postmaster_pid(pgdata)
        if postmaster is None or postmaster <= 0:
            return  # no server (a negative pid is a single-user backend's, not a server's)
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGINT)
            deadline = time.monotonic() + 30
            while _pid_alive(postmaster) and time.monotonic() < deadline:
                time.sleep(0.05)


def stop(data_dir: Path) -> None:
    """Releases this process's handle; the server stops when no process holds one."""
    server = _servers.pop((data_dir / "pg").resolve(), None)
    if server is not None:
        server.cleanup()
