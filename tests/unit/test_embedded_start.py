"""The embedded PostgreSQL's start-up: patient with a busy machine, retried once failed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from storage import embedded


class FakeModule:
    """Stands in for pgserver.postgres_server."""

    class PostgresServer:
        _instances: ClassVar[dict[Path, object]] = {}

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.timeouts: list[float] = []

    def pg_ctl(self, args: list[str], pgdata: Path | None = None, **kwargs: Any) -> str:
        self.timeouts.append(kwargs["timeout"])
        return ""

    def get_server(self, pgdata: Path, cleanup_mode: str) -> object:
        self.calls += 1
        self.PostgresServer._instances[pgdata] = "broken"
        if self.calls <= self.failures:
            raise FileNotFoundError("pg/log")
        return "server"


def test_pg_ctl_gets_more_than_ten_seconds() -> None:
    module = FakeModule(0)
    embedded._patient_pg_ctl(module)
    embedded._patient_pg_ctl(module)  # once only
    module.pg_ctl(["start"], pgdata=Path("x"), timeout=10)
    assert module.timeouts == [embedded.PG_CTL_TIMEOUT_S]


@pytest.mark.parametrize(("failures", "started"), [(0, True), (2, True), (3, False)])
def test_a_failed_start_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int, started: bool
) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, on import
        import pgserver

    module = FakeModule(failures)
    monkeypatch.setattr(pgserver, "postgres_server", module)
    monkeypatch.setattr(embedded.time, "sleep", lambda s: None)
    monkeypatch.setattr(embedded, "_servers", {})
    if started:
        assert embedded.start(tmp_path) == "server"
    else:
        with pytest.raises(embedded.EmbeddedDatabaseError, match="did not start"):
            embedded.start(tmp_path)
    assert module.calls == min(failures + 1, embedded.START_ATTEMPTS)


def test_a_stale_pid_file_of_a_killed_backend_is_removed(tmp_path: Path) -> None:
    """initdb's single-user backend writes postmaster.pid with its pid negated; killed
    before removing it, the file would fail every later start."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pid_file = tmp_path / "postmaster.pid"
    pid_file.write_text(f"-{gone.pid}\n{tmp_path}\n1796072155\n5432\n\n\n  2149569  98310\n")
    embedded._clear_stale_pid_file(tmp_path)
    assert not pid_file.exists()


def test_the_pid_file_of_a_live_server_is_kept(tmp_path: Path) -> None:
    pid_file = tmp_path / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{tmp_path}\n")
    embedded._clear_stale_pid_file(tmp_path)
    assert pid_file.exists()
