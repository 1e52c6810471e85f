"""The administrative command line, run as a process against a real database."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.cli import run_cli

ADDRESS = "0x" + "Ab" * 20


def _env(url: str) -> dict[str, str]:
    return {"DATABASE_URL": url}


def test_round_trip(db_url: str) -> None:
    env = _env(db_url)
    assert run_cli("migrate", env=env).out.strip() == "database is up to date"

    created = run_cli("orgs", "create", "Acme Trading", env=env)
    assert created.code == 0, created.err
    org_id = created.out.strip()
    uuid.UUID(org_id)

    added = run_cli("users", "add", "user-1", "--org", org_id, "--role", "viewer", env=env)
    assert added.code == 0, added.err

    tracked = run_cli("wallets", "track", "--org", org_id, ADDRESS, ADDRESS.lower(), env=env)
    assert tracked.code == 0, tracked.err
    assert "1 wallet(s) newly tracked" in tracked.out

    listed = run_cli("wallets", "list", "--org", org_id, env=env)
    assert listed.out.split() == [ADDRESS.lower()]
    assert org_id in run_cli("orgs", "list", env=env).out

    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT user_id, role FROM user_profiles").fetchall() == [
            ("user-1", "viewer")
        ]
        assert conn.execute("SELECT address FROM wallets").fetchall() == [(ADDRESS.lower(),)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("orgs",), "the following arguments are required"),
        (("users", "add", "u", "--org", "x", "--role", "owner"), "invalid choice"),
        (("users", "add", "u", "--org", "not-a-uuid", "--role", "admin"), "not an organisation id"),
        (
            (
                "users",
                "add",
                "u",
                "--org",
                "00000000-0000-0000-0000-000000000000",
                "--role",
                "admin",
            ),
            "no organisation has id",
        ),
        (
            ("wallets", "track", "--org", "00000000-0000-0000-0000-000000000000", "0x12"),
            "not a wallet",
        ),
        (("nonsense",), "invalid choice"),
    ],
)
def test_bad_arguments_fail_with_one_line(db_url: str, args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args, env=_env(db_url))
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert message in lines[0]
    assert "Traceback" not in result.err


def test_bad_address_writes_nothing(db_url: str) -> None:
    env = _env(db_url)
    org_id = run_cli("orgs", "create", "Acme", env=env).out.strip()
    result = run_cli("wallets", "track", "--org", org_id, ADDRESS, "0xnothex", env=env)
    assert result.code == 1
    assert "'0xnothex' is not a wallet address" in result.err
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM wallets").fetchone() == (0,)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "HYPERLIQUID_RPS",
            "fast",
            "HYPERLIQUID_RPS='fast' is not allowed: expected a positive number",
        ),
        ("HYPERLIQUID_RPS", "-1", "HYPERLIQUID_RPS='-1' is not allowed"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL='mysql://x' is not allowed"),
        ("HYPERLIQUID_API_URL", "ftp://x", "HYPERLIQUID_API_URL='ftp://x' is not allowed"),
    ],
)
def test_bad_settings_are_named(name: str, value: str, expected: str) -> None:
    result = run_cli("orgs", "list", env={name: value})
    assert result.code == 1
    assert result.err.strip() == f"hl-analytics: error: {expected}" or expected in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_unreachable_database_is_one_line() -> None:
    result = run_cli("orgs", "list", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.code == 1
    assert result.err.startswith("hl-analytics: error: cannot connect to PostgreSQL")
    assert "check DATABASE_URL" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_unmigrated_database_says_what_to_do(dbs) -> None:  # type: ignore[no-untyped-def]
    url = dbs.fresh(migrated=False)
    try:
        result = run_cli("orgs", "list", env={"DATABASE_URL": url})
        assert result.code == 1
        assert "run `hl-analytics migrate` first" in result.err
    finally:
        dbs.drop(url)
