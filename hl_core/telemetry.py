"""Prometheus metrics of the API and the workers.

prometheus_client was chosen because it is the reference client and is what
Dramatiq's own Prometheus middleware uses: in worker processes both write to the
same multiprocess folder (PROMETHEUS_MULTIPROC_DIR, set by that middleware before
any metric is created), and one exposition server serves the sum of all
processes. Metrics are therefore created lazily, on first use, never at import,
and prometheus_client itself is imported only then: it reads
PROMETHEUS_MULTIPROC_DIR when it is first imported, and the command line imports
this module before `hl-analytics worker` has set it (jobs.prometheus.prepare).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class ApiMetrics:
    requests: Counter
    latency: Histogram
    errors: Counter


@dataclass(frozen=True)
class WorkerMetrics:
    fills_ingested: Counter
    fills_quarantined: Counter
    hl_requests: Counter
    hl_rate_limited: Counter
    rollup_seconds: Histogram
    oldest_queued_age: Gauge


@cache
def api_metrics() -> ApiMetrics:
    from prometheus_client import Counter, Histogram

    return ApiMetrics(
        requests=Counter(
            "hla_api_requests_total",
            "GraphQL requests by operation and HTTP status.",
            ["operation", "status"],
        ),
        latency=Histogram(
            "hla_api_request_seconds",
            "GraphQL request latency by operation.",
            ["operation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        ),
        errors=Counter(
            "hla_api_errors_total",
            "GraphQL requests answered with errors, by operation and kind.",
            ["operation", "kind"],
        ),
    )


# `cache` lets two threads that call at once both build the metrics, and the second
# registration fails (a worker's threads' first ingests did, and were retried).
_worker_metrics_lock = threading.Lock()


def worker_metrics() -> WorkerMetrics:
    with _worker_metrics_lock:
        return _worker_metrics()


@cache
def _worker_metrics() -> WorkerMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return WorkerMetrics(
        fills_ingested=Counter("hla_fills_ingested_total", "New fills stored."),
        fills_quarantined=Counter("hla_fills_quarantined_total", "Fills rejected by validation."),
        hl_requests=Counter(
            "hla_hyperliquid_requests_total",
            "Requests to Hyperliquid by type and HTTP status.",
            ["type", "status"],
        ),
        hl_rate_limited=Counter("hla_hyperliquid_429_total", "Hyperliquid answers 429."),
        rollup_seconds=Histogram(
            "hla_rollup_seconds",
            "Duration of rollup statements.",
            ["level"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        ),
        oldest_queued_age=Gauge(
            "hla_jobs_oldest_queued_seconds",
            "Age of the oldest queued job.",
            multiprocess_mode="max",
        ),
    )


@dataclass(frozen=True)
class LiveMetrics:
    sockets: Gauge
    subscriptions: Gauge
    closed: Counter


@cache
def live_metrics() -> LiveMetrics:
    """The API's subscription websockets (graph/subscriptions.py)."""
    from prometheus_client import Counter, Gauge

    return LiveMetrics(
        sockets=Gauge("hla_ws_sockets", "Subscription websockets authenticated and open."),
        subscriptions=Gauge("hla_ws_subscriptions", "metricsChanged subscriptions running."),
        closed=Counter(
            "hla_ws_closed_total", "Subscription websockets closed by the API, by code.", ["code"]
        ),
    )


def exposition() -> tuple[bytes, str]:
    """The current metrics as Prometheus text, summed over processes when multiprocess."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def serve_metrics(host: str, port: int) -> None:
    """`/metrics` on a port of its own, from prometheus_client's server in a thread of
    this process (`hl-analytics api --metrics-port P`): behind a public load balancer,
    bind it to a private address that only the Prometheus server reaches."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)
