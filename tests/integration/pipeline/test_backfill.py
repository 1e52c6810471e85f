"""`backfill --archive`: archived fills past the API's 10,000-fill horizon, resumable."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from hl_core.telemetry import worker_metrics
from hlsim import nodefiles
from hlsim.market import HORIZON, Market
from jobs import backfill as backfill_module
from jobs.backfill import ArchiveInvalid, backfill
from storage import cursor, orgs
from tests.cli import run_cli
from tests.factories import ms
from tests.integration.pipeline.support import pipeline, sync, worker
from tests.simulator import StartSimulator

NOW = ms(2026, 1, 16, 0)
HOUR = 3_600_000
DAY = 24 * HOUR


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def count(conn: psycopg.Connection, wallet_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM hl_fills_raw WHERE wallet_id = %s", (wallet_id,))
    value = row.fetchone()
    assert value is not None
    return int(value[0])


def test_the_archive_reaches_past_the_horizon_and_clears_the_truncated_flag(
    auto: psycopg.Connection, db_url: str, tmp_path: Path, start_simulator: StartSimulator
) -> None:
    market = Market(5, now_ms=NOW)
    busy = market.add_wallet(fills_per_day=9_000, since_ms=NOW - 2 * DAY)
    quiet = market.add_wallet(fills_per_day=50, since_ms=NOW - 2 * DAY)
    server = start_simulator(market)
    # The archive: the first day LZ4 by block, hours of the older layout before it.
    nodefiles.write_archive(market, tmp_path, NOW - 2 * DAY, NOW - DAY, block_ms=10_000)
    nodefiles.write_archive(market, tmp_path, NOW - DAY, NOW, layout=nodefiles.PAIRS)
    org = orgs.create_org(auto, "A").id
    with pipeline(db_url, server) as p:
        with auto.transaction():
            orgs.track_wallets(auto, org, [busy, quiet])
        worker_metrics()  # created once before the worker's threads race to create them
        with worker(p):
            sync(p, auto)
        ids = {w.address: w.id for w in orgs.upsert_wallets(auto, [busy, quiet])}
        busy_id, quiet_id = ids[busy], ids[quiet]
        truth = len(market.fills(busy))
        assert truth > HORIZON and count(auto, busy_id) < truth
        before = cursor.get_cursor(auto, busy_id)
        assert before is not None and before.history_truncated and before.complete_from is None
        # The quiet wallet's API pass read its history from its first fill, untruncated.
        quiet_before = cursor.get_cursor(auto, quiet_id)
        first_day = utc_day(min(int(f["time"]) for f in market.fills(quiet)))
        assert quiet_before is not None and quiet_before.complete_from == first_day

        out = io.StringIO()
        report = backfill(p, auto, tmp_path, out=out)
        assert report.files == 48 and not report.damaged and report.missing_hours == 0
        assert count(auto, busy_id) == truth
        assert count(auto, quiet_id) == len(market.fills(quiet))
        after = cursor.get_cursor(auto, busy_id)
        assert after is not None and not after.history_truncated
        assert report.complete_from == date(2026, 1, 14)
        assert after.complete_from == date(2026, 1, 14)
        assert "[48/48]" in out.getvalue()

        again = backfill(p, auto, tmp_path, out=io.StringIO())
        assert again.stored == 0 and count(auto, busy_id) == truth


def test_a_crashed_backfill_resumes_and_a_damaged_file_does_not_stop_the_rest(
    auto: psycopg.Connection, db_url: str, tmp_path: Path, start_simulator: StartSimulator
) -> None:
    market = Market(6, now_ms=NOW)
    wallet = market.add_wallet(fills_per_day=3_000, since_ms=NOW - DAY)
    server = start_simulator(market)
    files = nodefiles.write_archive(market, tmp_path, NOW - 6 * HOUR, NOW, block_ms=10_000)
    damaged = files[2]
    damaged.write_bytes(damaged.read_bytes()[:-200])
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, [wallet])
    (wallet_id,) = (w.id for w in orgs.upsert_wallets(auto, [wallet]))
    with pipeline(db_url, server) as p:
        calls = 0
        real = backfill_module._store

        def crash_on_third(*args: object, **kwargs: object) -> int:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("killed")
            return real(*args, **kwargs)  # type: ignore[arg-type]

        backfill_module._store = crash_on_third  # type: ignore[assignment]
        try:
            with pytest.raises(RuntimeError, match="killed"):
                backfill(p, auto, tmp_path, out=io.StringIO(), batch_lines=100)
        finally:
            backfill_module._store = real  # type: ignore[assignment]
        partial = count(auto, wallet_id)
        out = io.StringIO()
        report = backfill(p, auto, tmp_path, out=out, batch_lines=100)
        assert "resuming at" in out.getvalue() and len(report.damaged) == 1
        assert report.complete_from is None
        in_archive = [f for f in market.fills(wallet) if NOW - 6 * HOUR <= f["time"] < NOW]
        lost = [f for f in in_archive if (NOW - 4 * HOUR) <= f["time"] < NOW - 3 * HOUR]
        assert partial < count(auto, wallet_id) <= len(in_archive)
        assert count(auto, wallet_id) >= len(in_archive) - len(lost)


def test_a_missing_archive_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ArchiveInvalid, match="no such directory"):
        backfill_module.archive_files(tmp_path / "nope", None, None)
    with pytest.raises(ArchiveInvalid, match="holds no fill files"):
        backfill_module.archive_files(tmp_path, None, None)


def test_status_says_how_many_wallets_are_complete_and_from_which_day_each_org_is(
    auto: psycopg.Connection, db_url: str
) -> None:
    full = orgs.create_org(auto, "Full").id
    part = orgs.create_org(auto, "Part").id
    with auto.transaction():
        a, b = orgs.track_wallets(auto, full, ["0x" + "a1" * 20, "0x" + "b2" * 20])[0]
        orgs.track_wallets(auto, part, [a.address, "0x" + "c3" * 20])
        for wallet, day in ((a, date(2025, 7, 27)), (b, date(2025, 9, 1))):
            cursor.advance(auto, wallet.id, synced_until_ms=NOW, last_fill_ms=NOW, stored=1)
            cursor.mark_complete_from(auto, wallet.id, day)
    result = run_cli("status", env={"DATABASE_URL": db_url})
    assert result.code == 0, result.err
    rows = {line.split()[0]: line.split() for line in result.out.splitlines() if line}
    assert rows["Full"][-2:] == ["2/2", "2025-09-01"]
    assert rows["Part"][-2:] == ["1/2", "-"]
    assert "1 wallet(s) have every fill from 2025-07-27 on" in result.out
