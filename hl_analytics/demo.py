"""`hl-analytics demo`: the whole system on one machine, in one command.

On the embedded PostgreSQL (unless DATABASE_URL is set) it migrates, seeds a demo
organisation with an admin user and the simulated market's wallets, starts the
simulated exchange, workers, the scheduler and the API as child processes, runs
a first full sync with progress, and prints the GraphQL endpoint and a token.
Ctrl-C, SIGTERM or closing the terminal (SIGHUP) stops every child (the API,
scheduler and workers before the exchange they use) and the embedded database;
a Ctrl-C during the first sync only stops waiting for it. When the demo dies
without cleaning up (`kill -9`), its lifeline (hl_analytics/lifeline.py) does it.
The API's port (8000, or `--port`) must be free: a busy one is an error, never
silently replaced. Running it again reuses the data; `--fresh` starts over.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType
from urllib.parse import quote

import httpx

from graph.auth import issue_token
from hl_analytics.lifeline import Lifeline, say
from hl_analytics.processes import Supervisor
from hl_core.errors import HLAnalyticsError
from hl_core.logs import JsonFormatter
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


def saved_jwt_secret(data_dir: Path) -> str | None:
    """The JWT secret of the demo that ran with this data folder, if one did."""
    try:
        return _state(data_dir).get("jwt_secret")
    except (OSError, ValueError):
        return None


def _save_state(data_dir: Path, state: dict[str, str]) -> None:
    path = data_dir / "demo.json"
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def _seed(url: str, state: dict[str, str], addresses: list[str], max_wallets: int) -> str:
    with connection(url) as conn:
        org_id = state.get("org_id")
        if org_id is None or not any(str(o.id) == org_id for o in orgs.list_orgs(conn)):
            org_id = str(orgs.create_org(conn, DEMO_ORG).id)
        orgs.add_user(conn, DEMO_ADMIN, org_id, "admin")
        tracking.track_wallets(conn, org_id, addresses, max_wallets=max_wallets)
    return org_id


def _simulator_wallets(base_url: str) -> list[str]:

    response = httpx.get(f"{base_url}/_sim/wallets", timeout=10)
    response.raise_for_status()
    return sorted(str(a) for a in response.json()["wallets"])


def _check_port(port: int) -> None:
    """The API's port must be free: a busy one is reported, not silently replaced
    (it is most often an earlier demo still running)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoError(
                f"port {port} is in use ({exc.strerror or exc}): is another demo or API "
                "still running? Stop it, or pick another port with `hl-analytics demo --port P`"
            ) from None


def graphiql_link(endpoint: str, token: str) -> str:
    """The endpoint's GraphiQL, opened with the Authorization header already set
    (Strawberry's page reads `?headers=`), so docs and autocompletion work at once."""
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    return f"{endpoint}?headers={quote(headers, safe='')}"


def _log_to_file(log_dir: Path) -> None:
    """The demo's own log records go to demo.log: the terminal is for the user's lines."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "demo.log")
    handler.setFormatter(JsonFormatter())
    logging.getLogger().handlers[:] = [handler]


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
    api_port = getattr(args, "port", None) or API_PORT
    _check_port(api_port)
    data_dir = settings.data_dir
    if args.fresh and data_dir.exists():
        say(f"--fresh: removing {data_dir}")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _log_to_file(data_dir / "logs")
    state = _state(data_dir)
    jwt_secret = settings.jwt_secret or state.get("jwt_secret") or secrets.token_urlsafe(32)
    state["jwt_secret"] = jwt_secret

    # Ctrl-C, SIGTERM and a closed terminal (SIGHUP) stop the demo; a Ctrl-C during
    # the first sync only stops waiting for it.
    stopping = threading.Event()
    skip_sync = threading.Event()
    in_first_sync = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and in_first_sync.is_set() and not skip_sync.is_set():
            skip_sync.set()
        else:
            stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    lifeline = Lifeline.start()
    supervisor = Supervisor({}, data_dir / "logs", lifeline)
    embedded_db = not settings.database_url
    node_dir = data_dir / "node"
    try:
        if embedded_db:
            lifeline.pgdata((data_dir / "pg").resolve())
        say(f"Starting PostgreSQL (data in {data_dir}) …")
        url = embedded.database_url(settings)
        applied = migrate(url)
        say(f"Database ready ({len(applied)} migration(s) applied).")

        env = dict(os.environ)
        env.update(
            DATABASE_URL=url,
            JWT_SECRET=jwt_secret,
            HL_ANALYTICS_DATA_DIR=str(data_dir),
            GRAPHIQL="1",
        )
        supervisor.env = env
        if stopping.is_set():
            return 130
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
        say(f"Exchange: {hl_url}")

        org_id = _seed(url, state, addresses, settings.hl_analytics_max_wallets_per_org)
        state["org_id"] = org_id
        _save_state(data_dir, state)
        say(f"Organisation {DEMO_ORG} ({org_id}) tracks {len(addresses)} wallets.")

        metrics_port = _free_port()
        supervisor.start(
            "worker",
            ["worker", "--processes", "1", "--threads", "4", "--metrics-port", str(metrics_port)],
        )
        supervisor.start("scheduler", ["scheduler"])
        in_first_sync.set()  # before the line: a Ctrl-C right after it only skips the wait
        say("First sync (Ctrl-C to skip waiting) …")
        sync = supervisor.start("sync", ["sync", "--wait"], log_to_file=False, watch=False)
        try:
            while sync.poll() is None and not (stopping.is_set() or skip_sync.is_set()):
                supervisor.check()
                stopping.wait(0.2)
        finally:
            in_first_sync.clear()
            if sync.poll() is None:
                supervisor.stop("sync", sync, grace_s=5)
        if stopping.is_set():
            return 130
        if skip_sync.is_set():
            say(
                "\nNot waiting for the first sync: the workers go on with it "
                "(`hl-analytics status` shows how far they got)."
            )

        if node_mode:
            supervisor.start("node-ingest", ["node-ingest", "--node-dir", str(node_dir)])
            say(f"Node source: following the simulated node's files in {node_dir}")
        supervisor.start("api", ["api", "--port", str(api_port)])
        supervisor.wait_http("api", f"http://127.0.0.1:{api_port}/healthz")
        token = issue_token(replace(settings, jwt_secret=jwt_secret), DEMO_ADMIN, 30 * 86_400)
        endpoint = f"http://127.0.0.1:{api_port}/graphql"
        say()
        say(f"GraphQL endpoint: {endpoint}")
        say(f"Bearer token: {token}")
        say()
        say("GraphiQL, signed in as demo-admin (open in a browser):")
        say(f"  {graphiql_link(endpoint, token)}")
        say("or try:")
        say(
            f"  curl -s {endpoint} -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' "
            f"-d '{json.dumps({'query': EXAMPLE_QUERY})}'"
        )
        say(
            f"\nMetrics (Prometheus): http://127.0.0.1:{api_port}/metrics (API), "
            f"http://127.0.0.1:{metrics_port}/ (workers)"
        )
        say(f"Logs: {supervisor.log_dir}. Ctrl-C stops everything.")
        while not stopping.wait(1.0):
            supervisor.check()
        return 0
    finally:
        # Nothing here may depend on the terminal: its reader may be gone (`| tee`
        # after Ctrl-C) or the terminal closed; `say` never raises.
        say("\nStopping …", err=True)
        supervisor.stop_all()
        if embedded_db:
            embedded.stop(data_dir)
        lifeline.close()
        say("Stopped.", err=True)
