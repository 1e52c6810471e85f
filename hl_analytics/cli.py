"""The `hl-analytics` command line.

Argument errors and domain errors (`HLAnalyticsError`) print one line on
stderr and exit non-zero; nothing is written when an argument is bad, because
every command validates its input before it opens a transaction.
"""

from __future__ import annotations

import argparse
import os
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
MAX_TTL_S = 100 * 365 * 86_400
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


def _ttl(value: str) -> int:
    """Seconds a development token lives: the API refuses an `exp` past 64 bits, so a
    lifetime beyond a century (either way) would sign a token no request can use."""
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if abs(seconds) > MAX_TTL_S:
        raise argparse.ArgumentTypeError(
            f"{seconds} is out of range: at most {MAX_TTL_S} seconds (100 years) either way"
        )
    return seconds


def _examples(*lines: str) -> str:
    """An epilog of example invocations, one a line."""
    return "examples:\n" + "\n".join(f"  {PROG} {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Hyperliquid wallet analytics for organisations.",
        epilog=_examples("demo", "orgs create Acme"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        help="folder of the embedded PostgreSQL (default: $HL_ANALYTICS_DATA_DIR or .hl-analytics)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p: argparse.ArgumentParser

    def add(
        parent: argparse._SubParsersAction[_Parser],
        name: str,
        help_: str,
        epilog: str,
    ) -> argparse.ArgumentParser:
        return parent.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def command(name: str, handler: Handler, help_: str, epilog: str) -> argparse.ArgumentParser:
        p = add(sub, name, help_, epilog)
        p.set_defaults(handler=handler)
        return p

    def actions(
        name: str, help_: str, epilog: str, dest: str
    ) -> argparse._SubParsersAction[_Parser]:
        return add(sub, name, help_, epilog).add_subparsers(
            dest=dest, required=True, metavar="ACTION", parser_class=_Parser
        )

    org_help = "id of the organisation (from `orgs create` or `orgs list`)"

    command("migrate", admin.migrate_cmd, "apply pending database migrations", _examples("migrate"))

    orgs = actions(
        "orgs", "manage organisations", _examples("orgs create Acme", "orgs list"), "orgs_command"
    )
    p = add(
        orgs, "create", "create an organisation and print its id", _examples("orgs create Acme")
    )
    p.add_argument("name", help="name of the new organisation")
    p.set_defaults(handler=admin.orgs_create)
    add(orgs, "list", "list organisations", _examples("orgs list")).set_defaults(
        handler=admin.orgs_list
    )

    users = actions(
        "users",
        "manage user profiles",
        _examples("users add alice --org ORG_ID --role admin"),
        "users_command",
    )
    p = add(
        users,
        "add",
        "give a user (the JWT's sub) an organisation and a role",
        _examples(
            "users add alice --org ORG_ID --role admin",
            "users add bob --org ORG_ID --role viewer",
        ),
    )
    p.add_argument("user_id", help="the user's id, as the `sub` claim of their JWT")
    p.add_argument("--org", required=True, dest="org_id", help=f"{org_help} (required)")
    p.add_argument(
        "--role",
        required=True,
        choices=("admin", "viewer"),
        help="admin may manage the organisation, viewer may only read (required)",
    )
    p.set_defaults(handler=admin.users_add)

    wallets = actions(
        "wallets",
        "manage tracked wallets",
        _examples("wallets track --org ORG_ID 0xADDRESS", "wallets list"),
        "wallets_command",
    )
    p = add(
        wallets,
        "track",
        "track wallets for an organisation",
        _examples("wallets track --org ORG_ID 0xADDRESS1 0xADDRESS2"),
    )
    p.add_argument("--org", required=True, dest="org_id", help=f"{org_help} (required)")
    p.add_argument(
        "addresses", nargs="+", metavar="ADDRESS", help="wallet addresses (0x and 40 hex digits)"
    )
    p.set_defaults(handler=admin.wallets_track)
    p = add(
        wallets,
        "untrack",
        "stop tracking a wallet for an organisation",
        _examples("wallets untrack --org ORG_ID 0xADDRESS"),
    )
    p.add_argument("--org", required=True, dest="org_id", help=f"{org_help} (required)")
    p.add_argument("address", metavar="ADDRESS", help="the wallet address to stop tracking")
    p.set_defaults(handler=admin.wallets_untrack)
    p = add(
        wallets,
        "list",
        "list tracked wallets",
        _examples("wallets list", "wallets list --org ORG_ID"),
    )
    p.add_argument("--org", dest="org_id", help="only this organisation's wallets (default: all)")
    p.set_defaults(handler=admin.wallets_list)

    p = command(
        "sync",
        services.sync_cmd,
        "enqueue ingest of tracked wallets",
        _examples("sync", "sync --org ORG_ID --wait"),
    )
    p.add_argument("--org", dest="org_id", help="only this organisation's wallets (default: all)")
    p.add_argument(
        "--wait",
        action="store_true",
        help="block until ingest and its rollups are done (default: off)",
    )
    p.add_argument(
        "--inline",
        action="store_true",
        help="also run the jobs here (implies --wait) (default: off)",
    )
    p = command(
        "worker",
        services.worker_cmd,
        "run Dramatiq worker processes",
        _examples("worker", "worker --processes 4 --threads 8 --metrics-port 9191"),
    )
    p.add_argument(
        "--processes", type=int, default=2, help="worker processes to run (default: %(default)s)"
    )
    p.add_argument(
        "--threads", type=int, default=4, help="threads in each process (default: %(default)s)"
    )
    p.add_argument(
        "--lease",
        type=float,
        default=30.0,
        help="seconds before a dead worker's jobs rerun (default: %(default)s)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds to finish jobs on SIGTERM (default: %(default)s)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics of all processes on this port (default: not served)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of the metrics server (default: %(default)s)",
    )
    p = command(
        "scheduler",
        services.scheduler_cmd,
        "re-ingest tracked wallets periodically",
        _examples("scheduler", "scheduler --interval 60", "scheduler --once"),
    )
    p.add_argument(
        "--interval", type=float, default=5.0, help="seconds between ticks (default: %(default)s)"
    )
    p.add_argument("--once", action="store_true", help="run one tick and exit (default: off)")
    p = command(
        "api",
        services.api_cmd,
        "serve GraphQL at /graphql",
        _examples("api", "api --host 0.0.0.0 --port 8000 --metrics-port 9192"),
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port", type=_port, default=8000, help="port to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        help="serve /metrics on this port instead of the API's (default: on the API's port)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of the metrics server (default: %(default)s)",
    )
    p = command(
        "token",
        services.token_cmd,
        "print a development JWT signed with JWT_SECRET",
        _examples("token alice", "token alice --ttl 3600"),
    )
    p.add_argument("user_id", help="the user's id, written as the token's `sub` claim")
    p.add_argument(
        "--ttl",
        type=_ttl,
        default=86_400,
        help="seconds until it expires; 0 or less gives an expired token (default: %(default)s)",
    )
    p = command(
        "simulate",
        services.simulate_cmd,
        "run the simulated Hyperliquid exchange",
        _examples("simulate", "simulate --port 8080 --seed 7 --short-pages"),
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port", type=_port, default=8080, help="port to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the simulated wallets and fills; the same seed gives the same data "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--weight-per-minute",
        type=int,
        default=1200,
        help="request weight each client may spend a minute, as Hyperliquid's "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--short-pages",
        action="store_true",
        help="cut fill pages at random lengths of 500-2000, as the real API may (default: off)",
    )
    p.add_argument(
        "--node-dir",
        help="also write the market's fills in real time as a node's fill files under DIR "
        "(default: none)",
    )
    p.add_argument(
        "--archive",
        dest="archive_dir",
        help="first write the market's past hours as the public archive lays them out under "
        "DIR (default: none)",
    )
    p = command(
        "node-ingest",
        services.node_ingest_cmd,
        "store the tracked wallets' fills from a Hyperliquid node's fill files as it writes them",
        _examples("node-ingest --node-dir ~/hl/data", "node-ingest --node-dir ~/hl/data --once"),
    )
    p.add_argument(
        "--node-dir",
        required=True,
        help="the node's data root, holding node_fills_by_block/hourly/YYYYMMDD/H",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=0.5,
        help="seconds between looks once caught up (default: %(default)s)",
    )
    p.add_argument("--once", action="store_true", help="stop once caught up (default: off)")
    p = command(
        "backfill",
        services.backfill_cmd,
        "store the tracked wallets' fills from Hyperliquid's archive of node fill files",
        _examples(
            "backfill --archive /data/hl-archive",
            "backfill --archive /data/hl-archive --org ORG_ID --from 2025-08-01 --to 2025-08-31",
        ),
    )
    p.add_argument(
        "--archive",
        required=True,
        dest="archive_dir",
        help="laid out as the archive: node_fills_by_block/hourly/… and node_fills/hourly/…",
    )
    p.add_argument("--org", dest="org_id", help="only this organisation's wallets (default: all)")
    p.add_argument(
        "--from", dest="first", type=_day, help="first UTC day, YYYY-MM-DD (default: the first)"
    )
    p.add_argument(
        "--to", dest="last", type=_day, help="last UTC day, YYYY-MM-DD (default: the last)"
    )
    p = command(
        "rebuild",
        rebuild.rebuild_cmd,
        "recompute the rollups from the raw fills (after HYPERLIQUID_USD_TOKENS changes)",
        _examples("rebuild", "rebuild --org ORG_ID --from 2024-01-01 --to 2024-01-31"),
    )
    p.add_argument("--org", dest="org_id", help="only this organisation's wallets (default: all)")
    p.add_argument(
        "--from", dest="first", type=_day, help="first UTC day, YYYY-MM-DD (default: the first)"
    )
    p.add_argument(
        "--to", dest="last", type=_day, help="last UTC day, YYYY-MM-DD (default: the last)"
    )
    command(
        "status",
        status.status_cmd,
        "print per-org sync status and queue depth",
        _examples("status"),
    )
    p = command(
        "demo",
        demo.demo_cmd,
        "run everything on the embedded default",
        _examples(
            "demo",
            "demo --hyperliquid-url https://api.hyperliquid.xyz --wallet 0xADDRESS",
        ),
    )
    p.add_argument("--fresh", action="store_true", help="start over with empty data (default: off)")
    p.add_argument(
        "--hyperliquid-url",
        help="track wallets on this exchange instead of the simulator; needs --wallet "
        "(default: the simulator)",
    )
    p.add_argument(
        "--wallet",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="track this wallet; repeat for more (default: the simulator's wallets)",
    )
    p.add_argument("--port", type=_port, default=8000, help="the API's port (default: %(default)s)")
    p.add_argument(
        "--source",
        choices=("api", "node"),
        default="api",
        help="node: the simulated exchange also writes a node's fill files, and "
        "`node-ingest` follows them (default: %(default)s)",
    )
    return parser


def _not_utf8(argv: Sequence[str]) -> str | None:
    """The first argument that is not valid UTF-8, shown escaped; Python hands such
    bytes over as lone surrogates, which PostgreSQL cannot store."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return repr(os.fsencode(arg))[1:]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    bad = _not_utf8(sys.argv[1:] if argv is None else argv)
    if bad is not None:
        print(f"{PROG}: error: the argument {bad} is not valid UTF-8", file=sys.stderr)
        return 2
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
