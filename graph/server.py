"""The API under uvicorn, one process (what `hl-analytics api` runs)."""

from __future__ import annotations

import gc
import logging
import socket

import uvicorn
from starlette.types import ASGIApp

from graph.app import create_app
from graph.headers import head_limited_protocol
from graph.limits import MAX_BODY_BYTES
from hl_core import telemetry
from hl_core.errors import HLAnalyticsError, SettingsError
from hl_core.settings import Settings
from storage import embedded

log = logging.getLogger(__name__)

WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # addresses that listen on every interface


def serve_api(
    settings: Settings,
    *,
    host: str,
    port: int,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> int:
    """Serves the API until interrupted; `/metrics` on `metrics_port` when given, else on
    the API's own port."""
    if not settings.jwt_secret and not settings.jwt_jwks_url:
        raise SettingsError(
            "set JWT_SECRET (HS256 tokens) or JWT_JWKS_URL (RS256/ES256 tokens): "
            "without either no request could be authenticated"
        )
    _check_listen(host, port)
    if metrics_port is not None:
        shared = host == metrics_host or bool({host, metrics_host} & WILDCARDS)
        if metrics_port == port and shared:
            # The check above binds and lets go, so both would pass it one after the other.
            raise PortUnavailable(
                f"--metrics-port {metrics_port} is the API's own --port: pick another, or "
                "leave --metrics-port out to serve /metrics on the API's port"
            )
        _check_listen(metrics_host, metrics_port)
    app = create_app(settings, embedded.database_url(settings), serve_metrics=metrics_port is None)
    if metrics_port is not None:
        telemetry.serve_metrics(metrics_host, metrics_port)
        log.info(
            "serving Prometheus metrics at http://%s:%d/metrics",
            metrics_host,
            metrics_port,
            extra={"action": "metrics_start"},
        )
    log.info(
        "serving GraphQL at http://%s:%d/graphql%s",
        host,
        port,
        " (GraphiQL in a browser)" if settings.graphiql else "",
        extra={"action": "api_start"},
    )
    serve(app, host, port)
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


class TokenSafeLog(logging.Filter):
    """Keeps tokens out of uvicorn's websocket lines (`uvicorn.error`); no log may record one.

    - At INFO, uvicorn logs each websocket handshake as `… "WebSocket /graphql?…"
      [accepted]` with the query string, where a client may have put its token
      (`?token=`): the path is kept, the query string dropped.
    - At DEBUG, `websockets` traces the wire: every handshake header as `< name: value`
      (an `Authorization` header among them), the request line and each frame (a
      `connection_init` with its token, shortened but keeping the signature's end).
      Those `<`/`>` lines are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg, args = record.msg, record.args
        if not isinstance(msg, str):
            return True
        if msg.startswith(("< ", "> ")):
            return False
        if '"WebSocket %s"' in msg and isinstance(args, tuple) and len(args) >= 2:
            path = str(args[1]).split("?", 1)[0]
            record.args = (args[0], path, *args[2:])
        return True


def serve(app: ASGIApp, host: str, port: int) -> None:
    """uvicorn, one process, after moving everything loaded so far out of the GC's sight:
    the full collections a busy server runs otherwise walk the whole schema and every
    module, which shows as stalls in the latency's tail."""
    logging.getLogger("uvicorn.error").addFilter(TokenSafeLog())
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the program's logging (JSON lines off a terminal)
        access_log=False,
        ws="websockets-sansio",  # subscriptions (graph/subscriptions.py)
        ws_max_size=MAX_BODY_BYTES,  # as an HTTP body: a larger message is refused unread
        lifespan="on",
        http=head_limited_protocol(),  # a huge request head is refused unparsed
    )
