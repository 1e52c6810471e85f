"""The API application: `/graphql` (HTTP, and websockets for subscriptions), the CSV
exports, `/healthz`, `/readyz`, `/metrics`, built by a factory.

The async pool, the change listener and the JWKS client open in the lifespan
and close with it; nothing lives in module globals. The pool checks a
connection on borrow, so the API answers 503 while the database is away and
recovers by itself when it is back. `/healthz` and `/readyz` are in
`graph/health.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from graph import graphiql
from graph.auth import Callers, TokenVerifier
from graph.cache import ResponseCache
from graph.context import Services
from graph.endpoint import GraphQLEndpoint
from graph.export import Exports
from graph.fanout import Hub
from graph.headers import HeaderLimit
from graph.health import Health
from graph.jwks import JwksKeys
from graph.listener import ChangeListener
from graph.profile_notify import ProfileListener
from graph.schema import build_schema
from graph.subscriptions import Sockets, SubscriptionEndpoint
from graph.throttle import Limits, Throttle
from hl_core import telemetry
from hl_core.settings import Settings
from storage.db import async_pool

POOL_TIMEOUT_S = 5.0


def create_app(
    settings: Settings,
    database_url: str,
    *,
    cache_enabled: bool = True,
    pool_timeout: float = POOL_TIMEOUT_S,
    pool_size: int = 8,
    serve_metrics: bool = True,
) -> Starlette:
    """The Starlette app; `cache_enabled=False` runs every request through GraphQL;
    `serve_metrics=False` leaves `/metrics` to a port of its own (`--metrics-port`)."""
    pool = async_pool(database_url, min_size=1, max_size=pool_size)
    cache = ResponseCache(
        settings.redis_url,
        enabled=cache_enabled,
        max_bytes=settings.hl_analytics_cache_max_bytes,
    )
    services = Services(
        pool,
        database_url,
        pool_timeout,
        cache,
        settings.hyperliquid_usd_tokens,
        settings.hl_analytics_max_wallets_per_org,
    )
    http = httpx.AsyncClient()
    jwks = JwksKeys(settings.jwt_jwks_url, http) if settings.jwt_jwks_url else None
    listener = ChangeListener(database_url, cache, settings.hl_analytics_cache_coalesce_s)
    health = Health(pool, database_url, settings.hl_analytics_health_stall_s, listener.listening)
    callers = Callers(pool, pool_timeout)
    profiles = ProfileListener(database_url, callers)
    throttle = Throttle(Limits.of(settings), settings.redis_url)
    schema = build_schema(introspection=settings.graphiql)
    verifier = TokenVerifier(settings, jwks)
    endpoint = GraphQLEndpoint(
        schema,
        services,
        verifier,
        callers,
        throttle,
        graphiql=settings.graphiql,
        cost_budget=settings.hl_analytics_cost_budget,
    )
    # Subscriptions: the one change listener fans out to every socket of this instance.
    hub = Hub(settings.hl_analytics_ws_queue)
    listener.on_change.append(hub.changed)
    listener.on_reconnect.append(hub.reconnected)
    sockets = Sockets(
        callers, settings.hl_analytics_ws_max_per_user, settings.hl_analytics_ws_max_connections
    )
    profiles.on_change.append(sockets.profile_changed)
    subscriptions = SubscriptionEndpoint(schema, verifier, callers, hub, sockets)
    exports = Exports(services, verifier, callers, throttle)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Not waiting for the database: the API starts, and /readyz says when it can answer.
        await pool.open(wait=False)
        listener.start()
        profiles.start()
        try:
            yield
        finally:
            await profiles.stop()
            await listener.stop()
            await health.close()
            await pool.close()
            await cache.close()
            await throttle.close()
            await http.aclose()

    async def prometheus(request: Request) -> Response:
        body, content_type = telemetry.exposition()
        return Response(body, media_type=content_type)

    routes: list[BaseRoute] = [
        Route("/graphql", endpoint, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", subscriptions),
        Route("/export/fills.csv", exports.fills, methods=["GET"]),
        Route("/export/daily.csv", exports.daily, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
    ]
    if serve_metrics:
        routes.append(Route("/metrics", prometheus, methods=["GET"]))
    assets = graphiql.assets_mount() if settings.graphiql else None
    if assets is not None:
        routes.append(assets)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(HeaderLimit)],  # 431 before any other work
    )
    app.state.services = services
    app.state.listener = listener
    app.state.profile_listener = profiles
    app.state.jwks = jwks
    app.state.hub = hub
    app.state.sockets = sockets
    app.state.health = health
    return app
