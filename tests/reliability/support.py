"""Shared pieces of the pipeline-side reliability scenarios (worker crashes, database
restart, exchange faults): real processes, a disposable PostgreSQL, ground truth.

`CHAOS=1` (what `make chaos` sets) raises the intensity of every scenario: more
kills, longer outages, more faults. The figures each scenario measured are
printed as one `reliability:` JSON line (run pytest with `-s` to see them).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from hlsim.market import Market
from hlsim.server import SimServer, wall_ms
from storage import orgs, positions
from storage.db import with_database
from storage.migrate import migrate
from tests.cli import HL_ANALYTICS
from tests.integration.pipeline.expected import expected_account

CHAOS = os.environ.get("CHAOS", "") not in ("", "0")

FILL_IDENTITIES = "SELECT wallet_id, tid, oid, time, coin FROM hl_fills_raw"
JOB_STATES = "SELECT state, count(*) FROM jobs GROUP BY state"
RECOVERED_JOBS = (
    "SELECT actor, count(*) FROM jobs WHERE last_error LIKE 'lease of worker % expired%'"
    " GROUP BY actor"
)


def intensity(normal: int, chaos: int) -> int:
    return chaos if CHAOS else normal


def report(scenario: str, **figures: object) -> None:
    """One machine-readable line of what a scenario measured (docs/reliability.md quotes them)."""
    print(f"reliability: {json.dumps({'scenario': scenario, 'chaos': CHAOS, **figures})}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def live_market(seed: int, *, wallets: int, days: float, busiest: float) -> Market:
    """Wallets with `days` of history up to now, activity spread up to `busiest` a day.

    Keep `days × busiest` under the API's 10,000-fill horizon: older fills are out of
    any client's reach, so no ingest could match the ground truth.
    """
    return Market.generate(
        seed, wallets=wallets, days=days, now_ms=wall_ms(), fills_per_day=(30, busiest)
    )


def pipeline_env(db_url: str, server: SimServer, rps: float = 500) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "HYPERLIQUID_API_URL": server.url,
        "HYPERLIQUID_RPS": f"{rps:g}",
        "LOG_LEVEL": "INFO",
    }


# -- processes -------------------------------------------------------------------------


class Process:
    """An `hl-analytics` command in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [HL_ANALYTICS, *args],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group: Dramatiq's main process and its worker processes."""
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 30) -> int:
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.log.name} ignored SIGTERM:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


def start_worker(
    env: dict[str, str], log: Path, *, lease_s: float = 2, threads: int = 3
) -> Process:
    return Process(
        [
            "worker",
            "--processes",
            "1",
            "--threads",
            str(threads),
            "--lease",
            f"{lease_s:g}",
            "--shutdown-timeout",
            "5",
        ],
        env,
        log,
    )


@contextmanager
def processes() -> Iterator[list[Process]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for p in started:
            if p.alive:
                p.kill()


# -- ground truth ----------------------------------------------------------------------


def two_orgs_sharing_a_wallet(conn: psycopg.Connection, wallets: list[str]) -> dict[str, list[str]]:
    """Org A tracks the first half (and one more), org B the rest: one wallet is shared."""
    half = len(wallets) // 2
    members = {"A": wallets[: half + 1], "B": wallets[half:]}
    out: dict[str, list[str]] = {}
    with conn.transaction():
        for name, tracked in members.items():
            org = orgs.create_org(conn, name)
            orgs.track_wallets(conn, org.id, tracked)
            out[str(org.id)] = tracked
    return out


def assert_every_fill_stored_once(
    conn: psycopg.Connection,
    server: SimServer,
    *,
    valid: Callable[[dict[str, Any]], bool] = lambda raw: True,
) -> int:
    """The stored fill identities are exactly the exchange's (valid) ones; returns how many."""
    ids = {w.address: w.id for w in orgs.upsert_wallets(conn, server.market.wallets)}
    want = Counter(
        (ids[a], f["tid"], f["oid"], f["time"], f["coin"])
        for a in ids
        for f in server.market.fills(a)
        if valid(f)
    )
    want = Counter(dict.fromkeys(want, 1))  # the exchange's own duplicates count once
    got = Counter(tuple(r) for r in conn.execute(FILL_IDENTITIES))
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"fills stored twice: {list(duplicates)[:5]}"
    assert got == want, f"missing {len(want - got)}, unexpected {len(got - want)}"
    return sum(got.values())


FUNDING_ROWS = "SELECT wallet_id, time, coin, usdc FROM hl_funding"


def assert_every_funding_payment_stored_once(conn: psycopg.Connection, server: SimServer) -> int:
    """The stored funding payments are exactly the exchange's, amounts included (the
    table's identity keeps one per wallet, time and coin); returns how many."""
    ids = {w.address: w.id for w in orgs.upsert_wallets(conn, server.market.wallets)}
    want = {
        (ids[a], e["time"], e["delta"]["coin"], Decimal(e["delta"]["usdc"]))
        for a in ids
        for e in server.market.funding(a)
    }
    got = [tuple(r) for r in conn.execute(FUNDING_ROWS)]
    assert len(got) == len(set(got))
    assert set(got) == want, f"missing {len(want - set(got))}, unexpected {len(set(got) - want)}"
    assert want, "some funding, or the check proves nothing"
    return len(got)


LEDGER_ROWS = "SELECT wallet_id, time, hash, delta FROM hl_ledger"


def assert_every_ledger_update_stored_once(conn: psycopg.Connection, server: SimServer) -> int:
    """The stored ledger updates are exactly the exchange's, each once; returns how many."""
    ids = {w.address: w.id for w in orgs.upsert_wallets(conn, server.market.wallets)}
    want = Counter(
        (ids[a], e["time"], e["hash"], json.dumps(e["delta"], sort_keys=True))
        for a in ids
        for e in server.market.ledger(a)
    )
    got = Counter(
        (w, t, h, json.dumps(d, sort_keys=True)) for w, t, h, d in conn.execute(LEDGER_ROWS)
    )
    assert got == want, f"missing {len(want - got)}, unexpected {len(got - want)}"
    assert want, "some ledger updates, or the check proves nothing"
    return sum(got.values())


def assert_every_snapshot_current(conn: psycopg.Connection, server: SimServer) -> None:
    """Every wallet's latest stored snapshot is the exchange's account as it is now: its
    account value, unrealized PnL and positions (by the independent computation)."""
    for wallet in orgs.upsert_wallets(conn, server.market.wallets):
        want = expected_account(server, wallet.address)
        days = positions.account_days(conn, wallet.id)
        assert days, f"no snapshot of {wallet.address}"
        got = (days[-1].account_value_usd, days[-1].unrealized_pnl_usd)
        assert got == (want.value, want.unrealized), wallet.address
        held = {p.coin: p.size for p in positions.positions(conn, wallet.id)}
        assert held == {c: Decimal(p["szi"]) for c, p in want.positions.items()}, wallet.address


def job_states(conn: psycopg.Connection) -> dict[str, int]:
    return {state: int(n) for state, n in conn.execute(JOB_STATES)}


def recovered_jobs(conn: psycopg.Connection) -> dict[str, int]:
    """Jobs delivered again after their worker died, by actor."""
    return {actor: int(n) for actor, n in conn.execute(RECOVERED_JOBS)}


# -- a disposable PostgreSQL cluster ----------------------------------------------------


class DisposableCluster:
    """A PostgreSQL cluster of its own in a temporary folder, on a TCP port, that a test
    stops and starts at will: the binaries are the `pgserver` wheel's.

    As root, PostgreSQL refuses to run: like pgserver, the commands then run as its
    unprivileged `pgserver` user, which must be able to reach the folder.
    """

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.port = free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="hla-chaos-pg-"))
        self.pgdata = self._tmp / "data"
        self.logfile = self._tmp / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self._tmp)
            self._tmp.chmod(0o755)
            entry = pwd.getpwnam(self.user)
            os.chown(self._tmp, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "utf8")

    def _run(self, exe: str, *args: str) -> None:
        proc = subprocess.run(
            [str(self.bin / exe), *args],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=self._tmp,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{exe} failed: {proc.stderr.strip()}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return with_database(self.url, name)

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self._tmp} -c fsync=off"
        self._run(
            "pg_ctl", "start", "-D", str(self.pgdata), "-l", str(self.logfile), "-w", "-o", options
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.database_url(name)
        migrate(url)
        return url

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self._tmp, ignore_errors=True)


@contextmanager
def disposable_cluster() -> Iterator[DisposableCluster]:
    cluster = DisposableCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()
