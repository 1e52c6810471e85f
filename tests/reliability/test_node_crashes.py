"""The node source under SIGKILL: `hl-analytics node-ingest` killed at random points of
the files it follows while the simulated node writes them, and restarted at once.

Guarantee: the stored fills are exactly those of the files (nothing lost, nothing
stored twice) and the org-day metrics equal an independent computation from them,
also when the API source ingests the same wallets at the same time. Mechanism: the
follower commits each batch's fills with the position after its last whole line
(jobs.node_source, storage.node_position), never reads a partial line, and both
sources store through the same idempotent insert (storage.fills).
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import psycopg
import pytest

from hlsim import nodefiles
from hlsim.coins import BY_NAME
from hlsim.market import Market
from jobs import actors, node_files
from storage import markets, node_position
from tests.factories import ms
from tests.integration.pipeline.expected import METRICS, expected_rows, resolve_planted
from tests.integration.pipeline.support import pipeline
from tests.reliability.support import (
    Process,
    assert_every_fill_stored_once,
    intensity,
    job_states,
    pipeline_env,
    processes,
    report,
    start_worker,
    two_orgs_sharing_a_wallet,
)
from tests.simulator import StartSimulator
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
# Late evening: the files written cross midnight.
T0 = ms(2026, 1, 15, 22, 45)
HOUR = 3_600_000
SPAN_MS = 2 * HOUR
STEP_MS = 20_000  # market time the node writes per step of the writer


def _unfinished(conn: psycopg.Connection) -> int:
    states = job_states(conn)
    return states.get("queued", 0) + states.get("running", 0)


def _caught_up(conn: psycopg.Connection, root: Path) -> bool:
    pos = node_position.get(conn, "node")
    last = node_files.hour_files(root)[-1]
    return (
        pos is not None
        and pos.file == node_files.relpath(root, last.path)
        and pos.byte_offset == last.path.stat().st_size
    )


def _distinct_in_files(root: Path) -> int:
    seen: set[tuple[object, ...]] = set()
    for hour in node_files.hour_files(root):
        with node_files.open_hour(hour.path) as f:
            for _, line in node_files.complete_lines(f, 0):
                for user, raw in node_files.parse_block(line).events:
                    seen.add((user, raw["tid"], raw["oid"], raw["time"], raw["coin"]))
    return len(seen)


@pytest.mark.parametrize("sources", ["node", "node+api"])
def test_sigkilled_node_ingest_resumes_and_the_numbers_equal_the_files(
    sources: str, db_url: str, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    rng = random.Random(11)
    market = Market.generate(31, wallets=6, days=0.01, now_ms=T0, fills_per_day=(2_000, 20_000))
    server = start_simulator(market)
    root = tmp_path / "node"
    writer = nodefiles.NodeWriter(market, root, start_ms=T0 - HOUR // 4)
    writer.write_until(T0)
    env = pipeline_env(db_url, server)
    kills = 0
    with psycopg.connect(db_url, autocommit=True) as conn, processes() as procs:
        with conn.transaction():
            # Priced as the workers' metadata lookups would price them.
            markets.record(conn, list(BY_NAME))
            resolve_planted(conn)
        members = two_orgs_sharing_a_wallet(conn, market.wallets)
        procs.append(start_worker(env, tmp_path / "worker.log"))
        args = ["node-ingest", "--node-dir", str(root), "--poll", "0.1"]
        node = Process(args, env, tmp_path / "node-0.log")
        procs.append(node)

        done = threading.Event()

        def write() -> None:
            at = T0
            while at < T0 + SPAN_MS:
                at += STEP_MS
                writer.write_until(at)
                done.wait(0.02)
            done.set()

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        if sources == "node+api":
            sync = Process(["sync", "--wait"], env, tmp_path / "sync.log")
            procs.append(sync)
        for round_ in range(intensity(4, 12)):
            before = node_position.get(conn, "node")
            lines = before.lines if before else 0
            wait_until(
                lambda lines=lines: (
                    (  # type: ignore[misc]
                        (p := node_position.get(conn, "node")) is not None and p.lines > lines
                    )
                    or (done.is_set() and _caught_up(conn, root))
                ),
                60,
                "node-ingest to store a batch",
            )
            if done.is_set() and _caught_up(conn, root):
                break  # the node stopped writing: nothing left to interrupt
            done.wait(rng.uniform(0, 0.4))  # anywhere in the next batches
            node.kill()
            kills += 1
            node = Process(args, env, tmp_path / f"node-{round_ + 1}.log")
            procs.append(node)
        thread.join(timeout=120)
        assert done.is_set()
        wait_until(lambda: _caught_up(conn, root), 120, "node-ingest to reach the files' end")
        if sources == "node+api":
            assert sync.proc.wait(timeout=180) == 0, sync.output()
        wait_until(lambda: _unfinished(conn) == 0, 120, "every rollup to finish")
        failed = conn.execute("SELECT actor, last_error FROM jobs WHERE state = 'failed'")
        assert failed.fetchall() == []
        stored = assert_every_fill_stored_once(conn, server)
        assert stored == _distinct_in_files(root)
        # Node files carry no funding or ledger updates: the API brings them (the worker
        # runs the ingests).
        with pipeline(db_url, server) as p, p.broker.transaction(conn):
            actors.send_funding_ingests(p, market.wallets)
            actors.send_ledger_ingests(p, market.wallets)
        wait_until(lambda: _unfinished(conn) == 0, 120, "the API ingests and their rollups")
        assert conn.execute(METRICS).fetchall() == expected_rows(conn, server, members)
        pos = node_position.get(conn, "node")
        assert pos is not None and pos.gaps == 0
        # Every line counted once: no batch was committed twice, none lost.
        assert pos.lines == (SPAN_MS + HOUR // 4) // nodefiles.DEFAULT_BLOCK_MS
        # The last one started: it handles SIGTERM once it is following.
        wait_until(lambda: "following" in node.output(), 60, "node-ingest to start")
        assert node.terminate() == 0, node.output()
    report("node_sigkill", sources=sources, kills=kills, fills=stored, lines=pos.lines)
