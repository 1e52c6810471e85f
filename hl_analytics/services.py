"""The commands that start a part of the system: `sync`, `worker`, `scheduler`,
`node-ingest`, `backfill`, `api`, `token` and `simulate`.

Each turns its parsed arguments into one call of a typed function of the layer
that does the work (`jobs`, `graph`, `hlsim`); the defaults are the parser's
(`hl_analytics.cli`), declared there once.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from graph.auth import issue_token
from graph.server import serve_api
from hl_analytics.demo import saved_jwt_secret
from hl_core.settings import Settings
from hlsim.server import simulate
from jobs.backfill import run_backfill
from jobs.node_source import run_node_ingest
from jobs.scheduler import run_scheduler
from jobs.sync import run_sync
from jobs.worker import run_worker
from storage import orgs


def sync_cmd(settings: Settings, args: argparse.Namespace) -> int:
    org_id = orgs.parse_org_id(args.org_id) if args.org_id else None
    return run_sync(settings, org_id, wait=args.wait, inline=args.inline)


def worker_cmd(settings: Settings, args: argparse.Namespace) -> int:
    return run_worker(
        settings,
        processes=args.processes,
        threads=args.threads,
        lease_s=args.lease,
        shutdown_s=args.shutdown_timeout,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )


def scheduler_cmd(settings: Settings, args: argparse.Namespace) -> int:
    return run_scheduler(settings, interval_s=args.interval, once=args.once)


def node_ingest_cmd(settings: Settings, args: argparse.Namespace) -> int:
    return run_node_ingest(settings, node_dir=args.node_dir, poll_s=args.poll, once=args.once)


def backfill_cmd(settings: Settings, args: argparse.Namespace) -> int:
    org_id = orgs.parse_org_id(args.org_id) if args.org_id else None
    return run_backfill(
        settings, archive_dir=args.archive_dir, org_id=org_id, first=args.first, last=args.last
    )


def api_cmd(settings: Settings, args: argparse.Namespace) -> int:
    return serve_api(
        settings,
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )


def token_cmd(settings: Settings, args: argparse.Namespace) -> int:
    """Signs with JWT_SECRET; without it, in a folder where the demo ran, with the
    demo's secret (kept in its data folder), so the token works against the demo."""
    if not settings.jwt_secret:
        settings = replace(settings, jwt_secret=saved_jwt_secret(settings.data_dir))
    print(issue_token(settings, args.user_id, args.ttl))
    return 0


def simulate_cmd(settings: Settings, args: argparse.Namespace) -> int:
    return simulate(
        host=args.host,
        port=args.port,
        seed=args.seed,
        weight_per_minute=args.weight_per_minute,
        short_pages=args.short_pages,
        node_dir=args.node_dir,
        archive_dir=args.archive_dir,
    )
