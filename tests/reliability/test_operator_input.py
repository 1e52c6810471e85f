"""Scenario 6: bad operator input changes nothing.

Guarantee: every `hl-analytics` command, given wrong arguments, an unreachable or
wrong database, or a setting with a bad value, exits non-zero with one line on
stderr that names the problem (no traceback), and writes nothing: the contents
of every table of the database are the same before and after.

`tests/acceptance/test_cli.py` shows the round trip and a few errors; this file
goes through every command and every setting. Commands run as real processes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hl_core.settings import SETTINGS
from storage import orgs
from storage.db import with_database
from tests.cli import Run, run_cli
from tests.dbs import TestDatabases

ZERO = "00000000-0000-0000-0000-000000000000"
WALLET = "0x" + "ab" * 20
OTHER_WALLET = "0x" + "cd" * 20
SECRET = {"JWT_SECRET": "operator-tests-secret-0123456789abcdef"}
DB_COMMANDS = [
    ("migrate",),
    ("orgs", "create", "Acme"),
    ("orgs", "list"),
    ("users", "add", "u2", "--org", "{org}", "--role", "viewer"),
    ("wallets", "track", "--org", "{org}", OTHER_WALLET),
    ("wallets", "untrack", "--org", "{org}", WALLET),
    ("wallets", "list"),
    ("sync",),
    ("sync", "--wait"),
    ("status",),
    ("scheduler", "--once"),
    ("worker", "--processes", "1"),
]

TABLES = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name
"""
FINGERPRINT = """
SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM {} t
"""


@dataclass(frozen=True)
class Db:
    url: str
    org: str
    server_url: str


def fingerprint(url: str) -> dict[str, str]:
    """Every table's contents, hashed: any insert, update or delete changes it."""
    out: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for (table,) in conn.execute(TABLES).fetchall():
            query = sql.SQL(FINGERPRINT).format(sql.Identifier(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            out[table] = str(row[0])
    return out


@pytest.fixture(scope="module")
def db(dbs: TestDatabases) -> Iterator[Db]:
    """A migrated database with an org, a user and a tracked wallet."""
    url = dbs.fresh()
    with psycopg.connect(url) as conn:
        org = orgs.create_org(conn, "Seeded").id
        orgs.add_user(conn, "u1", org, "admin")
        orgs.track_wallets(conn, org, [WALLET])
    try:
        yield Db(url, str(org), dbs.server_url)
    finally:
        dbs.drop(url)


def assert_one_line_error(result: Run, *words: str) -> str:
    """The command failed with a single error line on stderr containing `words`.

    Long-running commands (scheduler, worker) may log JSON lines before it; those
    are logs, not the error, and are left out.
    """
    assert result.code != 0, (result.out, result.err)
    assert "Traceback" not in result.err, result.err
    lines = [
        line for line in result.err.strip().splitlines() if not _is_json(line) and line.strip()
    ]
    assert len(lines) == 1, result.err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _args(args: tuple[str, ...], db: Db) -> list[str]:
    return [a.replace("{org}", db.org) for a in args]


# -- wrong arguments, command by command --------------------------------------------

BAD_ARGUMENTS: list[tuple[tuple[str, ...], str, bool]] = [
    # (arguments, words of the error, needs JWT_SECRET)
    ((), "the following arguments are required: COMMAND", False),
    (("nonsense",), "invalid choice", False),
    (("--data-dir",), "expected one argument", False),
    (("migrate", "now"), "unrecognized arguments: now", False),
    (("orgs",), "the following arguments are required", False),
    (("orgs", "create"), "required: name", False),
    (("orgs", "create", ""), "1 to 200 characters", False),
    (("orgs", "create", "x" * 201), "1 to 200 characters", False),
    (("orgs", "list", "all"), "unrecognized arguments", False),
    (("users", "add", "u2", "--org", "{org}"), "required: --role", False),
    (("users", "add", "u2", "--org", "{org}", "--role", "owner"), "invalid choice", False),
    (("users", "add", "", "--org", "{org}", "--role", "admin"), "1 to 255 characters", False),
    (("users", "add", "u2 ", "--org", "{org}", "--role", "admin"), "whitespace", False),
    (("users", "add", "   ", "--org", "{org}", "--role", "admin"), "whitespace", False),
    (("users", "add", "u2", "--org", "acme", "--role", "admin"), "not an organisation id", False),
    (("users", "add", "u2", "--org", ZERO, "--role", "admin"), "no organisation has id", False),
    (("wallets", "track", "--org", "{org}"), "required: ADDRESS", False),
    (("wallets", "track", "--org", "{org}", OTHER_WALLET, "0xnothex"), "not a wallet", False),
    (("wallets", "track", "--org", ZERO, OTHER_WALLET), "no organisation has id", False),
    (("wallets", "untrack", "--org", "{org}", "zz"), "not a wallet address", False),
    (("wallets", "untrack", "--org", ZERO, WALLET), "no organisation has id", False),
    (("wallets", "list", "--org", "acme"), "not an organisation id", False),
    (("wallets", "list", "--org", ZERO), "no organisation has id", False),
    (("sync", "--org", "acme"), "not an organisation id", False),
    (("sync", "--org", ZERO), "no organisation has id", False),
    (("sync", "--now"), "unrecognized arguments", False),
    (("worker", "--processes", "0"), "--processes must be above 0", False),
    (("worker", "--processes", "two"), "invalid int value", False),
    (("worker", "--threads", "0"), "--threads must be above 0", False),
    (("worker", "--lease", "-1"), "--lease must be above 0", False),
    (("worker", "--shutdown-timeout", "nan"), "--shutdown-timeout must be above 0", False),
    (("scheduler", "--interval", "0"), "--interval must be above 0", False),
    (("scheduler", "--interval", "inf", "--once"), "--interval must be a finite number", False),
    (("worker", "--lease", "inf"), "--lease must be a finite number", False),
    (("node-ingest", "--node-dir", ".", "--poll", "inf"), "--poll must be a finite number", False),
    (("scheduler", "--interval", "soon"), "invalid float value", False),
    (("api",), "set JWT_SECRET", False),
    (("api", "--port", "70000"), "not a port number", True),
    (("api", "--port", "http"), "not a port number", True),
    (("api", "--host", "256.0.0.1", "--port", "8123"), "cannot listen on 256.0.0.1", True),
    (("token",), "required: user_id", True),
    (("token", "u1"), "JWT_SECRET is not set", False),
    (("token", "u1", "--ttl", "1h"), "invalid int value", True),
    (("token", "u1", "--ttl", "9" * 23), "at most 3153600000 seconds", True),
    (("token", "u1", "--ttl", "-" + "9" * 23), "at most 3153600000 seconds", True),
    (("api", "--port", "8123", "--metrics-port", "8123"), "the API's own --port", True),
    (("simulate", "--port", "-1"), "not a port number", False),
    (("simulate", "--seed", "abc"), "invalid int value", False),
    (("status", "--verbose"), "unrecognized arguments", False),
    (("demo", "--wallet", "zz"), "not a wallet address", False),
    (("demo", "--hyperliquid-url", "http://127.0.0.1:1"), "needs at least one --wallet", False),
    (("demo", "--port", "http"), "not a port number", False),
]


@pytest.mark.parametrize(
    ("args", "words", "secret"), BAD_ARGUMENTS, ids=[" ".join(a[0]) or "-" for a in BAD_ARGUMENTS]
)
def test_wrong_arguments(
    db: Db, args: tuple[str, ...], words: str, secret: bool, tmp_path: Path
) -> None:
    """Guarantee: a wrong argument to any command is a one-line error, exit ≠ 0, and
    the database is untouched."""
    before = fingerprint(db.url)
    # A data folder where no demo ran (`token` would use a demo's secret).
    env = {"DATABASE_URL": db.url, "HL_ANALYTICS_DATA_DIR": str(tmp_path)}
    env.update(SECRET if secret else {})
    assert_one_line_error(run_cli(*_args(args, db), env=env, timeout=60), words)
    assert fingerprint(db.url) == before


@pytest.mark.parametrize("command", ["api", "simulate"])
def test_a_busy_port(db: Db, command: str) -> None:
    """Guarantee: a server command on a port already in use says so in one line."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        result = run_cli(
            command, "--port", port, env={"DATABASE_URL": db.url, **SECRET}, timeout=60
        )
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_a_busy_port_stops_the_demo_before_it_starts_anything(db: Db, tmp_path: Path) -> None:
    """Guarantee: the demo's API port in use (an earlier demo still running?) is a
    one-line error before anything starts, never a silent move to another port."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        result = run_cli(
            "demo", "--port", port, env={"HL_ANALYTICS_DATA_DIR": str(tmp_path)}, timeout=60
        )
    assert_one_line_error(result, f"port {port} is in use")
    assert list(tmp_path.iterdir()) == []


# -- an unreachable or wrong database -----------------------------------------------


def _bad_databases(db: Db) -> dict[str, tuple[str, str]]:
    """name → (DATABASE_URL, words the error must contain)."""
    return {
        "nothing listens": ("postgresql://postgres@127.0.0.1:1/x", "127.0.0.1"),
        "unknown database": (
            with_database(db.server_url, "hla_no_such_database"),
            "hla_no_such_database",
        ),
        "unknown host": ("postgresql://postgres@db.invalid:5432/x", "db.invalid"),
    }


def test_unreachable_or_wrong_database(db: Db) -> None:
    """Guarantee: with a database that cannot be reached, or a DATABASE_URL naming a
    database that does not exist, every command that needs the database fails at
    once with one line that says what was wrong and to check DATABASE_URL."""
    before = fingerprint(db.url)
    runs = [
        (name, url, words, command)
        for name, (url, words) in _bad_databases(db).items()
        for command in DB_COMMANDS
    ]

    def one(run: tuple[str, str, str, tuple[str, ...]]) -> tuple[str, tuple[str, ...], Run]:
        name, url, _, command = run
        return name, command, run_cli(*_args(command, db), env={"DATABASE_URL": url}, timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, runs))
    for (name, _, words, _), (_, command, result) in zip(runs, results, strict=True):
        line = assert_one_line_error(result, "cannot connect to PostgreSQL", "check DATABASE_URL")
        assert words in line, (name, command, line)
    assert fingerprint(db.url) == before


# -- bad settings -------------------------------------------------------------------

BAD_SETTINGS: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": (
        "mysql://x",
        "http://127.0.0.1:5432/x",
        "not a url",
        "postgresql://",
        "postgresql://u@[::1/x",
        "postgresql://u@host:port/x",
    ),
    "HL_ANALYTICS_DATA_DIR": ("   ",),
    "HYPERLIQUID_API_URL": ("ftp://x", "api.hyperliquid.xyz"),
    "HYPERLIQUID_RPS": ("fast", "0", "-1", "inf", "nan"),
    "HYPERLIQUID_USD_TOKENS": (" , ", "USDC;USDH", "US DC"),
    "HYPERLIQUID_DEXES": ("xyz!", "a b", "XYZ:"),
    "NODE_STALE_AFTER_S": ("soon", "0", "-5"),
    "JWT_SECRET": ("  ",),
    "JWT_JWKS_URL": ("file:///etc/jwks.json",),
    "JWT_AUDIENCE": (" ",),
    "JWT_ISSUER": (" ",),
    "JWT_ROLES": (",", "authenticated,,admin", "two words"),
    "REDIS_URL": ("http://127.0.0.1:6379",),
    "GRAPHIQL": ("maybe",),
    "LOG_LEVEL": ("LOUD",),
    "HL_ANALYTICS_HEALTH_STALL_S": ("0", "-5", "soon"),
    "HL_ANALYTICS_CACHE_MAX_BYTES": ("0", "64MB", "-1"),
    "HL_ANALYTICS_CACHE_COALESCE_S": ("0", "2s", "-1"),
    "HL_ANALYTICS_CALLER_RPS": ("0", "fast", "inf"),
    "HL_ANALYTICS_CALLER_BURST": ("0", "1.5"),
    "HL_ANALYTICS_ORG_RPS": ("-1", "nan"),
    "HL_ANALYTICS_ORG_BURST": ("none",),
    "HL_ANALYTICS_CALLER_CONCURRENCY": ("0",),
    "HL_ANALYTICS_ORG_CONCURRENCY": ("-2",),
    "HL_ANALYTICS_CALLER_COST_PER_S": ("0", "many"),
    "HL_ANALYTICS_CALLER_COST_BURST": ("-1",),
    "HL_ANALYTICS_COST_BUDGET": ("0", "big"),
    "HL_ANALYTICS_MAX_WALLETS_PER_ORG": ("0", "1e5"),
    "HL_ANALYTICS_WS_MAX_PER_USER": ("0", "five", "-1"),
    "HL_ANALYTICS_WS_MAX_CONNECTIONS": ("0", "1k"),
    "HL_ANALYTICS_WS_QUEUE": ("0", "many"),
}
BAD_SETTING_CASES = [(name, value) for name, values in BAD_SETTINGS.items() for value in values]


def test_every_setting_has_bad_values() -> None:
    """A new setting must come with the values it refuses (below)."""
    assert set(BAD_SETTINGS) == {s.name for s in SETTINGS}


@pytest.mark.parametrize(("name", "value"), BAD_SETTING_CASES)
def test_bad_setting(db: Db, name: str, value: str) -> None:
    """Guarantee: a setting with a bad value stops every command before it does
    anything, with one line naming the variable and what it accepts."""
    before = fingerprint(db.url)
    env = {"DATABASE_URL": db.url, name: value}
    line = assert_one_line_error(
        run_cli("orgs", "create", "Acme", env=env, timeout=60),
        f"{name}={value!r} is not allowed: expected",
    )
    assert line.startswith("hl-analytics: error: ")
    assert fingerprint(db.url) == before


def test_embedded_data_dir_that_is_a_file(db: Db, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Guarantee: without DATABASE_URL, a data folder that cannot hold the embedded
    PostgreSQL is a one-line error naming the folder and the way out."""
    not_a_folder = tmp_path_factory.mktemp("data") / "file"
    not_a_folder.write_text("not a folder")
    result = run_cli("orgs", "list", env={"HL_ANALYTICS_DATA_DIR": str(not_a_folder)}, timeout=60)
    assert_one_line_error(result, "embedded PostgreSQL", "set DATABASE_URL")


# -- text that is not UTF-8, or holds control characters ----------------------------

UNSAFE_TEXT = [
    (("orgs", "create", "Acme\udcff"), "not valid UTF-8"),  # the byte 0xff on the command line
    (("users", "add", "\udce9ve", "--org", "{org}", "--role", "viewer"), "not valid UTF-8"),
    (("wallets", "track", "--org", "{org}", "0x\udcff"), "not valid UTF-8"),
    (("orgs", "create", "Evil\x1b[31mCorp"), "control characters", "\\x1b"),
    (("orgs", "create", "line\nbreak"), "control characters", "\\x0a"),
    (("orgs", "create", "abc\u202edcba"), "control characters", "\\u202e"),
    (("users", "add", "bell\x07", "--org", "{org}", "--role", "viewer"), "control characters"),
    (("users", "add", "\x1b]0;title\x07", "--org", "{org}", "--role", "admin"), "control"),
]


@pytest.mark.parametrize(("args", "words"), [(c[0], c[1:]) for c in UNSAFE_TEXT])
def test_unsafe_text_is_refused_in_one_line(
    db: Db, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    """Guarantee: arguments that are not UTF-8, or that hold control characters (ANSI
    escapes, bidirectional overrides), are refused with one line naming them escaped;
    nothing is stored and nothing raw reaches the terminal."""
    before = fingerprint(db.url)
    result = run_cli(*_args(args, db), env={"DATABASE_URL": db.url})
    assert_one_line_error(result, *words)
    assert "\x1b" not in result.err and "\x07" not in result.err and "\u202e" not in result.err
    assert fingerprint(db.url) == before
