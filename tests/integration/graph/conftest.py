"""A real API (uvicorn on 127.0.0.1) over a seeded database, and a client for it."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from starlette.applications import Starlette

from graph.app import create_app
from hl_core.settings import Settings
from tests.dbs import TestDatabases
from tests.integration.graph.seed import Seeded, seed

SECRET = "graph-tests-secret-0123456789abcdef0123456789"
AUDIENCE = "authenticated"


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def make_token(
    sub: str,
    *,
    secret: str = SECRET,
    audience: str | None = AUDIENCE,
    issuer: str | None = None,
    expires_in: int = 3600,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    role: str | None = "authenticated",
    **extra: Any,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + expires_in, **extra}
    if role is not None:
        claims["role"] = role
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


@dataclass
class Api:
    url: str
    client: httpx.AsyncClient
    app: Starlette
    seeded: Seeded
    db_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, sub: str) -> str:
        if sub not in self.tokens:
            self.tokens[sub] = make_token(sub)
        return self.tokens[sub]

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        user: str | None = "alice",
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        bearer = token if token is not None else (self.token(user) if user else None)
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.client.post(self.url + "/graphql", json=body, headers=sent)

    async def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        response = await self.post(query, variables, **kw)
        payload = response.json()
        assert response.status_code == 200, payload
        assert "errors" not in payload, payload
        return payload["data"]


def settings(**overrides: str) -> Settings:
    env = {"JWT_SECRET": SECRET, "GRAPHIQL": "1", **overrides}
    return Settings.from_env(env)


@asynccontextmanager
async def running_api(
    db_url: str, seeded: Seeded, config: Settings | None = None, **app_kwargs: Any
) -> AsyncIterator[Api]:
    app = create_app(config or settings(), db_url, **app_kwargs)
    async with serve(app) as url, httpx.AsyncClient(timeout=30) as client:
        await app.state.listener.listening.wait()
        await app.state.profile_listener.listening.wait()
        yield Api(url, client, app, seeded, db_url)


@pytest.fixture
def seeded(db_url: str) -> Iterator[Seeded]:
    yield seed(db_url)


@pytest.fixture
async def api(db_url: str, seeded: Seeded) -> AsyncIterator[Api]:
    async with running_api(db_url, seeded) as instance:
        yield instance


@pytest.fixture(scope="module")
async def shared_api(dbs: TestDatabases) -> AsyncIterator[Api]:
    """One seeded API for a module whose tests only read."""
    url = dbs.fresh()
    try:
        async with running_api(url, seed(url)) as instance:
            yield instance
    finally:
        dbs.drop(url)
