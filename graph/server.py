"""`hl-analytics api`: the app under uvicorn, one process."""

from __future__ import annotations

import argparse
import gc
import logging
import socket

import uvicorn
from starlette.types import ASGIApp

from graph import metrics_server
from graph.app import create_app
from graph.headers import head_limited_protocol
from hl_analytics.errors import HLAnalyticsError, SettingsError
from hl_analytics.settings import Settings
from storage import embedded

log = logging.getLogger(__name__)


def api_cmd(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.jwt_secret and not settings.jwt_jwks_url:
        raise SettingsError(
            "set JWT_SECRET (HS256 tokens) or JWT_JWKS_URL (RS256/ES256 tokens): "
            "without either no request could be authenticated"
        )
    _check_listen(args.host, args.port)
    metrics_port = getattr(args, "metrics_port", None)
    metrics_host = getattr(args, "metrics_host", "127.0.0.1")
    if metrics_port is not None:
        _check_listen(metrics_host, metrics_port)
    app = create_app(settings, embedded.database_url(settings), serve_metrics=metrics_port is None)
    if metrics_port is not None:
        metrics_server.start(metrics_host, metrics_port)
        log.info(
            "serving Prometheus metrics at http://%s:%d/metrics",
            metrics_host,
            metrics_port,
            extra={"action": "metrics_start"},
        )
    log.info(
        "serving GraphQL at http://%s:%d/graphql%s",
        args.host,
        args.port,
        " (GraphiQL in a browser)" if settings.graphiql else "",
        extra={"action": "api_start"},
    )
    serve(app, args.host, args.port)
    return 0


class PortUnavailable(HLAnalyticsError):
    """The API cannot listen on that address: pick another --host or --port."""


def _check_listen(host: str, port: int) -> None:
    """Binds once before starting, so a busy port or a bad --host is a one-line error
    (uvicorn would log it over several lines and exit 3)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise PortUnavailable(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --host or --port"
        ) from None


def serve(app: ASGIApp, host: str, port: int) -> None:
    """uvicorn, one process, after moving everything loaded so far out of the GC's sight:
    the full collections a busy server runs otherwise walk the whole schema and every
    module, which shows as stalls in the latency's tail."""
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the program's logging (JSON lines off a terminal)
        access_log=False,
        ws="none",
        lifespan="on",
        http=head_limited_protocol(),  # a huge request head is refused unparsed
    )
