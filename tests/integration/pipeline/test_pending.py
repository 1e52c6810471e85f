"""Pending wallet-days and the `rollup_wallet_days` job that drains them.

The guarantees: an ingest page's pending rows and its rollup message commit with its
fills or not at all; a rollup that dies mid-transaction gives its rows back; an ingest
that commits while a rollup of the same day runs is rolled up too; two rollups of a
day share its rows; a day larger than a chunk is drained in several jobs; and the
org-day rollups a chunk causes count towards the sync batches of the ingests that
made its rows pending.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest

from hl_core.settings import Settings
from jobs import actors
from jobs.pipeline import Pipeline, build
from storage import fills, orgs, rollups
from storage import jobs as job_store
from tests.factories import address, fill, ms
from tests.integration.broker.support import standard_middleware, waits_on_a_lock
from tests.integration.pipeline.support import worker
from tests.waiting import wait_until

DAY = date(2026, 11, 2)
PENDING = "SELECT wallet_id FROM rollup_pending WHERE day = %s ORDER BY wallet_id"
ACTOR_JOBS = "SELECT message->'args', batches, state FROM jobs WHERE actor = %s ORDER BY id"


@pytest.fixture
def p(db_url: str) -> Iterator[Pipeline]:
    pipeline = build(
        Settings.from_env({"DATABASE_URL": db_url}),
        db_url,
        lease_s=5.0,
        poll_s=0.1,
        middleware=standard_middleware(),
    )
    try:
        yield pipeline
    finally:
        pipeline.close()


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def _wallets(conn: psycopg.Connection, n: int) -> list[int]:
    return [w.id for w in orgs.upsert_wallets(conn, [address(i + 1) for i in range(n)])]


def _store(conn: psycopg.Connection, wallet_id: int, *tids: int, hour: int = 9) -> None:
    fills.insert_fills(conn, wallet_id, [fill(ms(2026, 11, 2, hour), tid=t) for t in tids])


def _pending(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute(PENDING, (DAY,))]


def _jobs(conn: psycopg.Connection, actor: str) -> list[tuple[object, list[str], str]]:
    return [(r[0], list(r[1]), r[2]) for r in conn.execute(ACTOR_JOBS, (actor,))]


def _trades(conn: psycopg.Connection, wallet_id: int) -> int:
    got = rollups.wallet_day(conn, wallet_id, DAY)
    return got.trade_count if got else 0


def test_pending_rows_and_the_days_rollup_commit_with_the_fills_or_not_at_all(
    p: Pipeline, auto: psycopg.Connection
) -> None:
    w1, w2 = _wallets(auto, 2)
    # The page fails after its rollup was queued (say, the cursor move is refused).
    with pytest.raises(psycopg.errors.DivisionByZero), auto.transaction():
        _store(auto, w1, 1)
        actors.queue_wallet_days(p, auto, w1, [DAY])
        auto.execute("SELECT 1 / 0")
    assert _pending(auto) == [] and _jobs(auto, "rollup_wallet_days") == []
    assert auto.execute("SELECT count(*) FROM hl_fills_raw").fetchone() == (0,)

    for wallet_id in (w1, w2):  # pages of two wallets, each touching the same two days
        with auto.transaction():
            _store(auto, wallet_id, 1)
            actors.queue_wallet_days(p, auto, wallet_id, [DAY, date(2026, 11, 3)])
    assert _pending(auto) == [w1, w2]
    queued = _jobs(auto, "rollup_wallet_days")
    assert queued == [(["2026-11-02"], [], "queued"), (["2026-11-03"], [], "queued")], (
        "one job per day, merged while queued"
    )


def test_a_rollup_that_dies_mid_transaction_gives_its_rows_back(
    p: Pipeline, auto: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallets = _wallets(auto, 3)
    org = orgs.create_org(auto, "A").id
    orgs.track_wallets(auto, org, [address(i + 1) for i in range(3)])
    for wallet_id in wallets:
        with auto.transaction():
            _store(auto, wallet_id, 1, 2)
            actors.queue_wallet_days(p, auto, wallet_id, [DAY])

    # A connection closed inside the job's transaction: what a SIGKILLed worker leaves.
    doomed = psycopg.connect(db_url)
    taken = rollups.rollup_pending_chunk(doomed, DAY)
    assert taken.wallet_ids == wallets and not taken.more
    doomed.close()  # no COMMIT ever arrives
    assert _pending(auto) == wallets
    assert all(_trades(auto, w) == 0 for w in wallets)

    # The job's body failing after the rebuild (queueing the org-day rollups).
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(actors, "send_global_rollups", refuse)
    with pytest.raises(RuntimeError):
        actors.rollup_wallet_days(p, DAY.isoformat())
    assert _pending(auto) == wallets
    assert all(_trades(auto, w) == 0 for w in wallets)
    monkeypatch.undo()

    actors.rollup_wallet_days(p, DAY.isoformat())  # the re-delivery
    assert _pending(auto) == []
    assert [_trades(auto, w) for w in wallets] == [2, 2, 2]
    globals_ = _jobs(auto, "rollup_global_day")
    assert globals_ == [([str(org), "2026-11-02"], [], "queued")]


def test_an_ingest_committing_during_a_rollup_of_its_day_is_rolled_up_too(
    p: Pipeline, auto: psycopg.Connection, db_url: str
) -> None:
    w1, w2 = _wallets(auto, 2)
    with auto.transaction():
        _store(auto, w1, 1)
        actors.queue_wallet_days(p, auto, w1, [DAY])

    with psycopg.connect(db_url) as rollup, psycopg.connect(db_url) as ingest:
        taken = rollups.rollup_pending_chunk(rollup, DAY)  # open: w1 taken, not committed
        assert taken.wallet_ids == [w1]

        # A page of w1 (its row is taken by the running rollup) and one of w2 (fresh).
        _store(ingest, w2, 1, 2)
        actors.queue_wallet_days(p, ingest, w2, [DAY])
        _store(ingest, w1, 2, 3)
        done = threading.Event()

        def page_of_w1() -> None:
            actors.queue_wallet_days(p, ingest, w1, [DAY])  # waits for the rollup's commit
            done.set()

        page = threading.Thread(target=page_of_w1)
        page.start()
        wait_until(
            lambda: waits_on_a_lock(db_url, ingest.info.backend_pid),
            what="the page to wait for the rollup's lock",
        )
        assert not done.is_set(), "the page waits for the rollup holding w1's row"
        rollup.commit()
        page.join(timeout=30)
        assert done.is_set()
        ingest.commit()

    assert _trades(auto, w1) == 1, "the rollup ran before the page's fills committed"
    assert _pending(auto) == [w1, w2], "w1 is pending again: the page's fills need it"
    assert _jobs(auto, "rollup_wallet_days") == [(["2026-11-02"], [], "queued")]
    actors.rollup_wallet_days(p, DAY.isoformat())
    assert (_trades(auto, w1), _trades(auto, w2), _pending(auto)) == (3, 2, [])


def test_two_rollups_of_a_day_share_its_rows_and_the_second_waits_for_the_first(
    p: Pipeline, auto: psycopg.Connection, db_url: str
) -> None:
    wallets = _wallets(auto, 5)
    for wallet_id in wallets:
        with auto.transaction():
            _store(auto, wallet_id, 1)
            actors.queue_wallet_days(p, auto, wallet_id, [DAY])

    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        a = rollups.rollup_pending_chunk(first, DAY, limit=3)
        b = rollups.rollup_pending_chunk(second, DAY, limit=3)
        assert (a.wallet_ids, b.wallet_ids) == (wallets[:3], wallets[3:])
        # The second saw rows it could not take: it must look again rather than end
        # while the first may still roll back.
        assert a.more and a.full
        assert b.more and not b.full
        first.commit()
        second.commit()
    assert _pending(auto) == []
    assert [_trades(auto, w) for w in wallets] == [1] * 5
    with psycopg.connect(db_url) as third:
        c = rollups.rollup_pending_chunk(third, DAY, limit=3)
        assert (c.wallet_ids, c.more, c.full) == ([], False, False)


def test_a_large_day_is_drained_in_several_chunks_within_the_sync_batch(
    p: Pipeline, auto: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollups, "PENDING_CHUNK", 3)
    wallets = _wallets(auto, 10)
    org = orgs.create_org(auto, "A").id
    orgs.track_wallets(auto, org, [address(i + 1) for i in range(10)])
    for n, wallet_id in enumerate(wallets, start=1):
        _store(auto, wallet_id, *range(1, n + 1))
    auto.execute(
        "INSERT INTO rollup_pending (day, wallet_id) SELECT %s, unnest(%s::bigint[])",
        (DAY, wallets),
    )
    with auto.transaction(), p.broker.transaction(auto):
        p.rollup_wallet_days.send_with_options(
            args=(DAY.isoformat(),), batch="sync-1", dedup_key=f"rollup_wallet_days:{DAY}"
        )
    with worker(p, threads=2):
        p.broker.join("rollups", timeout=30_000)
    assert _pending(auto) == []
    assert [_trades(auto, w) for w in wallets] == list(range(1, 11))
    runs = _jobs(auto, "rollup_wallet_days")
    assert len(runs) >= 4, "10 wallets in chunks of 3"
    assert all(batches == ["sync-1"] and state == "done" for _, batches, state in runs)
    globals_ = _jobs(auto, "rollup_global_day")
    assert globals_ and all(b == ["sync-1"] and s == "done" for _, b, s in globals_)
    (org_day,) = rollups.org_days(auto, org)
    assert (org_day.dau, org_day.trade_count) == (10, sum(range(1, 11)))
    assert job_store.batch_progress(auto, "sync-1").failed == 0


def test_org_day_rollups_count_towards_the_batches_that_made_the_rows_pending(
    p: Pipeline, auto: psycopg.Connection
) -> None:
    (wallet_id,) = _wallets(auto, 1)
    org = orgs.create_org(auto, "A").id
    orgs.track_wallets(auto, org, [address(1)])
    # An ingest of batch B made the row pending; a rollup job of another batch (or of
    # none) took it: the org-day rollup it queues must still hold B's `sync --wait`.
    message = {
        "queue_name": "ingest",
        "actor_name": "ingest_wallet",
        "args": [address(1)],
        "kwargs": {},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": 0,
    }
    job_store.insert_job(auto, message, batches=["B"])
    row = auto.execute("SELECT id FROM jobs WHERE actor = 'ingest_wallet'").fetchone()
    assert row is not None
    with auto.transaction():
        _store(auto, wallet_id, 1)
        rollups.add_pending(auto, wallet_id, [DAY], job_id=row[0])
    actors.rollup_wallet_days(p, DAY.isoformat())
    assert _jobs(auto, "rollup_global_day") == [([str(org), "2026-11-02"], ["B"], "queued")]
