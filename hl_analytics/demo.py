"""`hl-analytics demo`: the whole system on one machine, in one command.

On the embedded PostgreSQL (unless DATABASE_URL is set) it migrates, seeds a demo
organisation with an admin user and the simulated market's wallets, starts the
simulated exchange, workers, the scheduler and the API as child processes, runs
a first full sync with progress, and prints the GraphQL endpoint and a token.
Ctrl-C (or SIGTERM) stops every child and the embedded database. Running it
again reuses the data; `--fresh` starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

import httpx

from hl_analytics.processes import Supervisor, cli_executable
from hl_core.errors import HLAnalyticsError
from hl_core.settings import Settings
from jobs import tracking
from storage import embedded, orgs
from storage.db import connection
from storage.migrate import migrate

DEMO_ORG = "Demo Org"
DEMO_ADMIN = "demo-admin"
DEMO_SEED = 7
# The demo's simulated exchange grants far more weight than Hyperliquid's 1200 a
# minute, and the limiter is set to match, so the first sync of a few dozen
# wallets' history takes seconds; with --hyperliquid-url the settings stand.
DEMO_SIMULATOR_RPS = "50"
DEMO_SIMULATOR_WEIGHT = str(1_000_000)
API_PORT = 8000
EXAMPLE_QUERY = "{ dashboardSummary { day trackedWallets latest { totalVolumeUsd dau } } }"


class DemoError(HLAnalyticsError):
    """The demo could not start."""


def _free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise DemoError("no free TCP port on 127.0.0.1")


def _state(data_dir: Path) -> dict[str, str]:
    """What the demo keeps between runs: its org id and JWT secret."""
    path = data_dir / "demo.json"
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    return {}


def _save_state(data_dir: Path, state: dict[str, str]) -> None:
    path = data_dir / "demo.json"
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def _seed(url: str, state: dict[str, str], addresses: list[str]) -> str:
    with connection(url) as conn:
        org_id = state.get("org_id")
        if org_id is None or not any(str(o.id) == org_id for o in orgs.list_orgs(conn)):
            org_id = str(orgs.create_org(conn, DEMO_ORG).id)
        orgs.add_user(conn, DEMO_ADMIN, org_id, "admin")
        tracking.track_wallets(conn, org_id, addresses)
    return org_id


def _simulator_wallets(base_url: str) -> list[str]:

    response = httpx.get(f"{base_url}/_sim/wallets", timeout=10)
    response.raise_for_status()
    return sorted(str(a) for a in response.json()["wallets"])


def demo_cmd(settings: Settings, args: argparse.Namespace) -> int:
    if args.hyperliquid_url and not args.wallet:
        raise DemoError("--hyperliquid-url needs at least one --wallet ADDRESS to track")
    node_mode = getattr(args, "source", "api") == "node"
    if node_mode and args.hyperliquid_url:
        raise DemoError(
            "--source node runs with the simulated exchange; with a real node, run "
            "`hl-analytics node-ingest --node-dir DIR` beside the demo"
        )
    for address in args.wallet:
        orgs.normalize_address(address)
    data_dir = settings.data_dir
    if args.fresh and data_dir.exists():
        print(f"--fresh: removing {data_dir}")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    state = _state(data_dir)
    jwt_secret = settings.jwt_secret or state.get("jwt_secret") or secrets.token_urlsafe(32)
    state["jwt_secret"] = jwt_secret

    print(f"Starting PostgreSQL (data in {data_dir}) …", flush=True)
    url = embedded.database_url(settings)
    applied = migrate(url)
    print(f"Database ready ({len(applied)} migration(s) applied).", flush=True)

    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        JWT_SECRET=jwt_secret,
        HL_ANALYTICS_DATA_DIR=str(data_dir),
        GRAPHIQL="1",
    )
    supervisor = Supervisor(env, data_dir / "logs")
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    node_dir = data_dir / "node"
    try:
        if args.hyperliquid_url:
            hl_url = args.hyperliquid_url.rstrip("/")
            addresses = [orgs.normalize_address(a) for a in args.wallet]
            env["HYPERLIQUID_API_URL"] = hl_url
        else:
            port = _free_port()
            hl_url = f"http://127.0.0.1:{port}"
            simulate = ["simulate", "--port", str(port), "--seed", str(DEMO_SEED)]
            simulate += ["--weight-per-minute", DEMO_SIMULATOR_WEIGHT]
            if node_mode:
                simulate += ["--node-dir", str(node_dir)]
            supervisor.start("simulator", simulate)
            supervisor.wait_http("simulator", f"{hl_url}/_sim/wallets")
            addresses = [orgs.normalize_address(a) for a in args.wallet] or _simulator_wallets(
                hl_url
            )
            env["HYPERLIQUID_API_URL"] = hl_url
            env["HYPERLIQUID_RPS"] = DEMO_SIMULATOR_RPS
        print(f"Exchange: {hl_url}", flush=True)

        org_id = _seed(url, state, addresses)
        state["org_id"] = org_id
        _save_state(data_dir, state)
        print(f"Organisation {DEMO_ORG} ({org_id}) tracks {len(addresses)} wallets.", flush=True)

        metrics_port = _free_port()
        supervisor.start(
            "worker",
            ["worker", "--processes", "1", "--threads", "4", "--metrics-port", str(metrics_port)],
        )
        supervisor.start("scheduler", ["scheduler"])
        print("First sync (Ctrl-C to skip waiting) …", flush=True)
        sync = subprocess.Popen([cli_executable(), "sync", "--wait"], env=env)
        while sync.poll() is None and not stopping.wait(0.2):
            supervisor.check()
        if sync.poll() is None:
            sync.terminate()
            sync.wait()
        if stopping.is_set():
            return 130

        if node_mode:
            supervisor.start("node-ingest", ["node-ingest", "--node-dir", str(node_dir)])
            print(f"Node source: following the simulated node's files in {node_dir}", flush=True)

        api_port = _free_port(API_PORT)
        supervisor.start("api", ["api", "--port", str(api_port)])
        supervisor.wait_http("api", f"http://127.0.0.1:{api_port}/healthz")
        token = subprocess.run(
            [cli_executable(), "token", DEMO_ADMIN, "--ttl", str(30 * 86_400)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        endpoint = f"http://127.0.0.1:{api_port}/graphql"
        print()
        print(f"GraphQL endpoint: {endpoint}")
        print(f"Bearer token: {token}")
        print()
        print("Open the endpoint in a browser for GraphiQL, and set the header")
        print('  {"Authorization": "Bearer <token>"}')
        print("or try:")
        print(
            f"  curl -s {endpoint} -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' "
            f"-d '{json.dumps({'query': EXAMPLE_QUERY})}'"
        )
        print(
            f"\nMetrics (Prometheus): http://127.0.0.1:{api_port}/metrics (API), "
            f"http://127.0.0.1:{metrics_port}/ (workers)"
        )
        print(f"Logs: {supervisor.log_dir}. Ctrl-C stops everything.", flush=True)
        while not stopping.wait(1.0):
            supervisor.check()
        return 0
    finally:
        print("\nStopping …", file=sys.stderr, flush=True)
        supervisor.stop_all()
        embedded.stop(data_dir)
        print("Stopped.", file=sys.stderr, flush=True)
