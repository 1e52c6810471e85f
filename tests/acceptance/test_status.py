"""`hl-analytics status` on a seeded database: orgs, sync state, queue, failures."""

from __future__ import annotations

import psycopg

from storage import cursor, funding, kind_cursor, orgs
from storage import jobs as job_store
from storage.kind_cursor import FUNDING
from tests.cli import run_cli
from tests.factories import address


def _message(actor: str, args: list[object]) -> dict[str, object]:
    return {
        "queue_name": "default",
        "actor_name": actor,
        "args": args,
        "kwargs": {},
        "options": {},
        "message_id": f"m-{actor}-{args}",
        "message_timestamp": 0,
    }


def test_status_on_seeded_database(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        acme = orgs.create_org(conn, "Acme")
        orgs.create_org(conn, "Empty Co")
        wallets, _ = orgs.track_wallets(conn, acme.id, [address(1), address(2), address(3)])
        cursor.advance(
            conn,
            wallets[0].id,
            synced_until_ms=1_700_000_000_000,
            last_fill_ms=1_699_999_999_000,
            stored=42,
        )
        cursor.record_success(conn, wallets[0].id)
        cursor.record_error(conn, wallets[1].id, "Hyperliquid answered 500")
        job_store.insert_job(conn, _message("ingest_wallet", [address(3)]))
        job_store.insert_job(conn, _message("rollup_wallet_days", ["2026-11-02"]))
        conn.commit()  # a job is due from its send, which a claim sees once committed
        claimed = job_store.claim_jobs(conn, "default", "w1", 10, 30.0)
        failed = next(c for c in claimed if c.id == max(c.id for c in claimed))
        job_store.finish_job(
            conn, failed.id, failed.attempts, failed=True, error="boom: division by zero"
        )

    result = run_cli("status", env={"DATABASE_URL": db_url})
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    acme_line = next(line for line in lines if line.startswith("Acme"))
    assert str(acme.id) in acme_line
    # 3 wallets, 1 synced, 1 failing, 0 truncated, 42 fills stored, 0 unpriced, 0 to re-read,
    # none known complete (so the org is not complete from any day)
    assert acme_line.split()[2:6] == ["3", "1", "1", "0"]
    assert acme_line.split()[-5:] == ["42", "0", "0", "0/3", "-"]
    assert any(line.startswith("Empty Co") for line in lines)
    assert any("rollup_wallet_days" in line and "failed" in line for line in lines)
    assert any("boom: division by zero" in line for line in lines)


def test_status_on_empty_database(db_url: str) -> None:
    result = run_cli("status", env={"DATABASE_URL": db_url})
    assert result.code == 0, result.err
    assert "none: create one with `hl-analytics orgs create NAME`" in result.out
    assert "Queue\n  empty" in result.out


def test_status_shows_each_data_kinds_freshness(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        acme = orgs.create_org(conn, "Acme")
        wallets, _ = orgs.track_wallets(conn, acme.id, [address(1), address(2), address(3)])
        kind_cursor.advance(conn, wallets[0].id, FUNDING, until_ms=1_700_000_000_000, stored=7)
        kind_cursor.record_success(conn, wallets[0].id, FUNDING)
        kind_cursor.record_error(conn, wallets[1].id, FUNDING, "Hyperliquid answered 500")
        funding.quarantine(conn, wallets[1].id, {"time": 1, "delta": None}, "delta is missing")
        conn.commit()

    result = run_cli("status", env={"DATABASE_URL": db_url})
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert any(line.startswith("Data kinds") for line in lines)
    fills_line = next(line for line in lines if line.startswith("fills "))
    assert fills_line.split()[1:4] == ["3", "0", "0"]
    funding_line = next(line for line in lines if line.startswith("funding "))
    # 3 wallets, 1 synced, 1 failing, …, 7 stored, 1 quarantined
    assert funding_line.split()[1:4] == ["3", "1", "1"]
    assert funding_line.split()[-2:] == ["7", "1"]
