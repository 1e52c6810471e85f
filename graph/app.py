"""The API application: `/graphql`, `/healthz`, `/readyz`, built by a factory.

The async pool, the change listener and the JWKS client open in the lifespan
and close with it; nothing lives in module globals. The pool checks a
connection on borrow, so the API answers 503 while the database is away and
recovers by itself when it is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from graph import graphiql
from graph.auth import Callers, TokenVerifier
from graph.cache import ResponseCache
from graph.context import Services
from graph.endpoint import GraphQLEndpoint
from graph.jwks import JwksKeys
from graph.listener import ChangeListener
from graph.schema import build_schema
from hl_core import telemetry
from hl_core.settings import Settings
from storage import dashboard
from storage.db import async_borrow, async_pool
from storage.errors import DatabaseUnavailable

POOL_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 2.0


def create_app(
    settings: Settings,
    database_url: str,
    *,
    cache_enabled: bool = True,
    pool_timeout: float = POOL_TIMEOUT_S,
    pool_size: int = 8,
) -> Starlette:
    """The Starlette app; `cache_enabled=False` runs every request through GraphQL."""
    pool = async_pool(database_url, min_size=1, max_size=pool_size)
    cache = ResponseCache(settings.redis_url, enabled=cache_enabled)
    services = Services(pool, database_url, pool_timeout, cache, settings.hyperliquid_usd_tokens)
    http = httpx.AsyncClient()
    jwks = JwksKeys(settings.jwt_jwks_url, http) if settings.jwt_jwks_url else None
    listener = ChangeListener(database_url, cache)
    endpoint = GraphQLEndpoint(
        build_schema(introspection=settings.graphiql),
        services,
        TokenVerifier(settings, jwks),
        Callers(pool, pool_timeout),
        graphiql=settings.graphiql,
    )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        try:
            async with async_borrow(pool, READY_TIMEOUT_S) as conn:
                await dashboard.ping(conn)
        except DatabaseUnavailable as exc:
            return JSONResponse({"status": "unavailable", "reason": exc.message}, 503)
        return JSONResponse({"status": "ready"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Not waiting for the database: the API starts, and /readyz says when it can answer.
        await pool.open(wait=False)
        listener.start()
        try:
            yield
        finally:
            await listener.stop()
            await pool.close()
            await cache.close()
            await http.aclose()

    async def prometheus(request: Request) -> Response:
        body, content_type = telemetry.exposition()
        return Response(body, media_type=content_type)

    routes: list[BaseRoute] = [
        Route("/graphql", endpoint, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    assets = graphiql.assets_mount() if settings.graphiql else None
    if assets is not None:
        routes.append(assets)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.listener = listener
    app.state.jwks = jwks
    return app
