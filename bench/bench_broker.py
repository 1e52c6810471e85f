"""Broker: enqueue rate, drain throughput and enqueue→start latency, beside dramatiq-postgres.

Both brokers run on the same PostgreSQL server (a scratch database each, fresh
for every repetition), with Dramatiq's default middleware and the same worker
settings: one worker process of 8 threads, Dramatiq's default prefetch.

- enqueue: N no-op messages sent one at a time, each its own transaction.
- drain: those N messages run by a worker process timed from its start (interpreter,
  imports and worker boot included) until the N-th message has run.
- latency: with a warm, idle worker, messages sent 20 ms apart; the actor compares
  its start time with the send time carried in its argument.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event

import dramatiq
import dramatiq_postgres  # type: ignore[import-untyped]
import psycopg

from bench.common import BenchContext, Goal, Result

THREADS = 8
LATENCY_GAP_S = 0.02
BASELINE = "dramatiq-postgres"
OURS = "jobs.broker"


def _broker(kind: str, url: str) -> dramatiq.Broker:
    if kind == OURS:
        from jobs.broker import PostgresBroker

        return PostgresBroker(url)
    broker: dramatiq.Broker = dramatiq_postgres.PostgresBroker(url=url, results=False)
    return broker


def _database(ctx: BenchContext, kind: str) -> str:
    if kind == OURS:
        return ctx.database()
    url = ctx.database(migrated=False)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        dramatiq_postgres.init(cur)
    return url


def _declare(
    broker: dramatiq.Broker, on_run: Callable[[float | None], None]
) -> dramatiq.Actor[[float | None], None]:
    def noop(sent_at: float | None = None) -> None:
        on_run(sent_at)

    return dramatiq.actor(broker=broker, actor_name="noop", max_retries=0)(noop)


def _worker_process(
    kind: str,
    url: str,
    expected: int,
    ready: Event,
    done: Event,
    latencies: multiprocessing.Queue[list[float]],
) -> None:
    """A worker process that sets `done` once `expected` messages have run."""
    broker = _broker(kind, url)
    lock = threading.Lock()
    seen: list[float] = []
    count = 0

    def on_run(sent_at: float | None) -> None:
        nonlocal count
        now = time.time()
        with lock:
            count += 1
            if sent_at is not None:
                seen.append(now - sent_at)
            if count == expected:
                done.set()

    _declare(broker, on_run)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=THREADS)
    worker.start()
    ready.set()
    done.wait()
    latencies.put(seen)
    worker.stop()
    broker.close()


def _spawn(
    kind: str, url: str, expected: int
) -> tuple[multiprocessing.process.BaseProcess, Event, Event, multiprocessing.Queue[list[float]]]:
    mp = multiprocessing.get_context("spawn")
    ready, done = mp.Event(), mp.Event()
    latencies: multiprocessing.Queue[list[float]] = mp.Queue()
    proc = mp.Process(target=_worker_process, args=(kind, url, expected, ready, done, latencies))
    return proc, ready, done, latencies


def _enqueue_and_drain(kind: str, url: str, n: int) -> tuple[float, float]:
    """Returns (enqueue msgs/s, drain jobs/s) of one repetition."""
    sender = _broker(kind, url)
    actor = _declare(sender, lambda _: None)
    try:
        start = time.perf_counter()
        for _ in range(n):
            actor.send(None)
        enqueue_s = time.perf_counter() - start
    finally:
        sender.close()
    proc, _, done, latencies = _spawn(kind, url, n)
    start = time.perf_counter()
    proc.start()
    if not done.wait(300):
        proc.kill()
        raise RuntimeError(f"{kind} did not drain {n} messages within 300 s")
    drain_s = time.perf_counter() - start
    latencies.get(timeout=60)
    proc.join(60)
    return n / enqueue_s, n / drain_s


def _latencies(kind: str, url: str, m: int) -> list[float]:
    """Enqueue→start latencies in milliseconds, of messages sent to an idle warm worker."""
    proc, ready, done, latencies = _spawn(kind, url, m)
    proc.start()
    sender = _broker(kind, url)
    actor = _declare(sender, lambda _: None)
    try:
        if not ready.wait(60):
            raise RuntimeError(f"the {kind} worker did not start within 60 s")
        time.sleep(1.0)  # let the consumers settle into waiting
        for _ in range(m):
            actor.send(time.time())
            time.sleep(LATENCY_GAP_S)
        if not done.wait(60):
            raise RuntimeError(f"{kind} did not run {m} messages within 60 s")
    finally:
        sender.close()
    seen = latencies.get(timeout=60)
    proc.join(60)
    return [s * 1000 for s in seen]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(ctx: BenchContext) -> list[Result]:
    n = ctx.scale(5000, 500)
    m = ctx.scale(300, 60)
    rates: dict[str, list[tuple[float, float]]] = {OURS: [], BASELINE: []}
    lat: dict[str, list[float]] = {OURS: [], BASELINE: []}
    for repetition in range(ctx.runs):
        # Both databases exist before either is measured (creating one floods the
        # server's write-ahead log for a while), and the two take turns going first.
        kinds = (OURS, BASELINE) if repetition % 2 == 0 else (BASELINE, OURS)
        urls = {kind: _database(ctx, kind) for kind in kinds}
        for kind in kinds:
            rates[kind].append(_enqueue_and_drain(kind, urls[kind], n))
    for repetition in range(ctx.scale(3, 2)):
        kinds = (OURS, BASELINE) if repetition % 2 == 0 else (BASELINE, OURS)
        urls = {kind: _database(ctx, kind) for kind in kinds}
        for kind in kinds:
            lat[kind].extend(_latencies(kind, urls[kind], m))

    def median(kind: str, index: int) -> float:
        return statistics.median(r[index] for r in rates[kind])

    return [
        Result(
            f"broker enqueue, one at a time ({n} msgs)",
            "msgs/s",
            median(OURS, 0),
            BASELINE,
            median(BASELINE, 0),
            "≥ dramatiq-postgres",
            Goal("ratio", ">=", 1.0),
        ),
        Result(
            f"broker drain, {n} no-op jobs, 1 process × {THREADS} threads, start-up included",
            "jobs/s",
            median(OURS, 1),
            BASELINE,
            median(BASELINE, 1),
            "≥ dramatiq-postgres",
            Goal("ratio", ">=", 1.0),
        ),
        Result(
            "broker enqueue→start latency p50 (idle worker)",
            "ms",
            _percentile(lat[OURS], 0.5),
            BASELINE,
            _percentile(lat[BASELINE], 0.5),
            "≤ dramatiq-postgres",
            Goal("ratio", "<=", 1.0),
        ),
        Result(
            "broker enqueue→start latency p99 (idle worker)",
            "ms",
            _percentile(lat[OURS], 0.99),
            BASELINE,
            _percentile(lat[BASELINE], 0.99),
            "≤ dramatiq-postgres",
            Goal("ratio", "<=", 1.0),
        ),
    ]
