"""The `hl-analytics` command line.

Argument errors and domain errors (`HLAnalyticsError`) print one line on
stderr and exit non-zero; nothing is written when an argument is bad, because
every command validates its input before it opens a transaction.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from typing import NoReturn

from hl_analytics import admin, demo, rebuild, services, status
from hl_core.errors import HLAnalyticsError
from hl_core.logs import configure_logging
from hl_core.settings import Settings

PROG = "hl-analytics"
Handler = Callable[[Settings, argparse.Namespace], int | None]


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a day: use YYYY-MM-DD") from None


def _port(value: str) -> int:
    """A TCP port to listen on, checked here so a typo is a usage error, not a traceback."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1 to 65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Hyperliquid wallet analytics for organisations.")
    parser.add_argument(
        "--data-dir",
        help="folder of the embedded PostgreSQL (default: $HL_ANALYTICS_DATA_DIR or .hl-analytics)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p: argparse.ArgumentParser

    def command(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    command("migrate", admin.migrate_cmd, "apply pending database migrations")

    orgs = sub.add_parser("orgs", help="manage organisations").add_subparsers(
        dest="orgs_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    p = orgs.add_parser("create", help="create an organisation and print its id")
    p.add_argument("name")
    p.set_defaults(handler=admin.orgs_create)
    orgs.add_parser("list", help="list organisations").set_defaults(handler=admin.orgs_list)

    users = sub.add_parser("users", help="manage user profiles").add_subparsers(
        dest="users_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    p = users.add_parser("add", help="give a user (the JWT's sub) an organisation and a role")
    p.add_argument("user_id")
    p.add_argument("--org", required=True, dest="org_id")
    p.add_argument("--role", required=True, choices=("admin", "viewer"))
    p.set_defaults(handler=admin.users_add)

    wallets = sub.add_parser("wallets", help="manage tracked wallets").add_subparsers(
        dest="wallets_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    p = wallets.add_parser("track", help="track wallets for an organisation")
    p.add_argument("--org", required=True, dest="org_id")
    p.add_argument("addresses", nargs="+", metavar="ADDRESS")
    p.set_defaults(handler=admin.wallets_track)
    p = wallets.add_parser("untrack", help="stop tracking a wallet for an organisation")
    p.add_argument("--org", required=True, dest="org_id")
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(handler=admin.wallets_untrack)
    p = wallets.add_parser("list", help="list tracked wallets")
    p.add_argument("--org", dest="org_id")
    p.set_defaults(handler=admin.wallets_list)

    p = command("sync", services.sync_cmd, "enqueue ingest of tracked wallets")
    p.add_argument("--org", dest="org_id")
    p.add_argument(
        "--wait", action="store_true", help="block until ingest and its rollups are done"
    )
    p.add_argument("--inline", action="store_true", help="also run the jobs here (implies --wait)")
    p = command("worker", services.worker_cmd, "run Dramatiq worker processes")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument(
        "--lease", type=float, default=30.0, help="seconds before a dead worker's jobs rerun"
    )
    p.add_argument(
        "--shutdown-timeout", type=float, default=30.0, help="seconds to finish jobs on SIGTERM"
    )
    p.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics of all processes on this port"
    )
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics server")
    p = command("scheduler", services.scheduler_cmd, "re-ingest tracked wallets periodically")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between ticks")
    p.add_argument("--once", action="store_true", help="run one tick and exit")
    p = command("api", services.api_cmd, "serve GraphQL at /graphql")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    p = command("token", services.token_cmd, "print a development JWT signed with JWT_SECRET")
    p.add_argument("user_id")
    p.add_argument("--ttl", type=int, default=86_400, help="seconds until it expires")
    p = command("simulate", services.simulate_cmd, "run the simulated Hyperliquid exchange")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8080)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--weight-per-minute",
        type=int,
        default=1200,
        help="request weight each client may spend a minute, as Hyperliquid's (default 1200)",
    )
    p.add_argument(
        "--short-pages",
        action="store_true",
        help="cut fill pages at random lengths of 500-2000, as the real API may (default: off)",
    )
    p.add_argument(
        "--node-dir",
        help="also write the market's fills in real time as a node's fill files under DIR",
    )
    p.add_argument(
        "--archive",
        dest="archive_dir",
        help="first write the market's past hours as the public archive lays them out under DIR",
    )
    p = command(
        "node-ingest",
        services.node_ingest_cmd,
        "store the tracked wallets' fills from a Hyperliquid node's fill files as it writes them",
    )
    p.add_argument(
        "--node-dir",
        required=True,
        help="the node's data root, holding node_fills_by_block/hourly/YYYYMMDD/H",
    )
    p.add_argument("--poll", type=float, default=0.5, help="seconds between looks once caught up")
    p.add_argument("--once", action="store_true", help="stop once caught up")
    p = command(
        "backfill",
        services.backfill_cmd,
        "store the tracked wallets' fills from Hyperliquid's archive of node fill files",
    )
    p.add_argument(
        "--archive",
        required=True,
        dest="archive_dir",
        help="laid out as the archive: node_fills_by_block/hourly/… and node_fills/hourly/…",
    )
    p.add_argument("--org", dest="org_id", help="only this organisation's wallets (default: all)")
    p.add_argument("--from", dest="first", type=_day, help="first UTC day, YYYY-MM-DD")
    p.add_argument("--to", dest="last", type=_day, help="last UTC day, YYYY-MM-DD")
    p = command(
        "rebuild",
        rebuild.rebuild_cmd,
        "recompute the rollups from the raw fills (after HYPERLIQUID_USD_TOKENS changes)",
    )
    p.add_argument("--org", dest="org_id", help="only this organisation's wallets (default: all)")
    p.add_argument(
        "--from", dest="first", type=_day, help="first UTC day, YYYY-MM-DD (default: the first)"
    )
    p.add_argument(
        "--to", dest="last", type=_day, help="last UTC day, YYYY-MM-DD (default: the last)"
    )
    command("status", status.status_cmd, "print per-org sync status and queue depth")
    p = command("demo", demo.demo_cmd, "run everything on the embedded default")
    p.add_argument("--fresh", action="store_true", help="start over with empty data")
    p.add_argument(
        "--hyperliquid-url", help="track wallets on this exchange instead of the simulator"
    )
    p.add_argument("--wallet", action="append", default=[], metavar="ADDRESS")
    p.add_argument(
        "--source",
        choices=("api", "node"),
        default="api",
        help="node: the simulated exchange also writes a node's fill files, and "
        "`node-ingest` follows them (default: api)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.data_dir:
            settings = replace(settings, hl_analytics_data_dir=args.data_dir)
        configure_logging(settings.log_level)
        result = args.handler(settings, args)
    except HLAnalyticsError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
