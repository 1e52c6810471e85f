"""`/graphql`: transport, authentication, fair share, the response cache, then Strawberry.

Every request is authenticated (token verified, profile resolved) before
anything else; the caller's org then scopes both the cache key and the
resolvers. Then the caller's and the org's request rates are checked
(graph/throttle.py), the document's cost against the budget (graph/cost.py),
and the cache is asked by what the request means (graph/requests.py). A cached
answer is sent without running GraphQL at all; a miss runs it holding one of the
caller's and the org's database slots. Errors a client can act on keep their
message; anything unexpected is logged with the request id (also sent as
`X-Request-Id`) and masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import strawberry
from graphql import GraphQLError, OperationType, build_ast_schema, parse
from starlette.types import Receive, Scope, Send
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType as StrawberryOperation

from graph import graphiql as graphiql_page
from graph.auth import Callers, TokenVerifier, authorization, bearer_token
from graph.cache import Answer, ttl_for
from graph.context import Caller, RequestContext, Services
from graph.cost import check_budget, document_cost
from graph.errors import ClientError
from graph.limits import without_suggestions
from graph.requests import (
    GraphQLRequest,
    Operation,
    RawRequest,
    classify,
    meaning,
    parsed,
    query_params,
    read_post,
)
from graph.throttle import RateLimited, Throttle
from graph.ttlmap import MISSING, TtlMap
from hl_core import telemetry
from storage.errors import DatabaseUnavailable
from storage.lending import RequestConnection

log = logging.getLogger(__name__)
QUERY_ONLY = (StrawberryOperation.QUERY,)
ALL_OPERATIONS = (StrawberryOperation.QUERY, StrawberryOperation.MUTATION)
JSON = b"application/json"
HTML = b"text/html; charset=utf-8"
EPOCH = date(1970, 1, 1)
UNAVAILABLE = "the database is unavailable; retry in a few seconds"
MAX_LABELS = 10_000


@dataclass(frozen=True, slots=True)
class Meaning:
    """What the endpoint needs of a request before the cache: its digest, cost and label."""

    digest: str
    cost: int
    label: str


@lru_cache(maxsize=2)
def _day_name(day_number: int) -> str:
    return (EPOCH + timedelta(days=day_number)).isoformat()


def utc_day() -> str:
    """Today (UTC) as YYYY-MM-DD; computed once a day, not once a request."""
    return _day_name(int(time.time() // 86_400))


def _json(payload: object) -> bytes:
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate the client sent (JSON allows "\ud800") quoted back in an
        # error: UTF-8 cannot carry it, JSON's \u escapes can.
        return json.dumps(payload, separators=(",", ":")).encode()


def error_answer(status: int, message: str, code: str) -> Answer:
    return Answer(status, _json({"errors": [{"message": message, "extensions": {"code": code}}]}))


def limited_answer(exc: RateLimited) -> Answer:
    """A 429; the seconds to wait travel in `ttl` (a 429 is never cached)."""
    return Answer(429, error_answer(429, exc.message, exc.code).body, exc.retry_after)


class GraphQLEndpoint:
    """The ASGI app behind `/graphql` (GET and POST).

    Plain ASGI rather than Starlette's Request and Response: on a cache hit the
    request objects would cost more than everything else the answer needs.
    """

    def __init__(
        self,
        schema: strawberry.Schema,
        services: Services,
        verifier: TokenVerifier,
        callers: Callers,
        throttle: Throttle,
        *,
        graphiql: bool,
        cost_budget: int,
    ) -> None:
        self.schema = schema
        self.throttle = throttle
        self.cost_budget = cost_budget
        self.services = services
        self.cache = services.cache
        self.verifier = verifier
        self.callers = callers
        self._page = Answer(200, graphiql_page.local_page().encode()) if graphiql else None
        self._metrics = telemetry.api_metrics()
        # Metric labels use only the schema's own root field names, so hostile
        # documents cannot grow the number of time series.
        sdl = build_ast_schema(parse(schema.as_str()))
        self._root_fields = frozenset(
            name
            for root in (sdl.query_type, sdl.mutation_type)
            if root is not None
            for name in root.fields
        )
        # The meaning of recent request bodies, by their bytes: a repeated body is
        # neither parsed nor printed again.
        self._meanings: TtlMap[bytes, Meaning] = TtlMap(MAX_LABELS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = os.urandom(16).hex()  # as unique as uuid4, and cheaper
        started = time.perf_counter()
        answer, extra, label = await self._handle(scope, receive, request_id)
        content_type = HTML if answer is self._page else JSON
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-request-id", request_id.encode()),
            *extra,
        ]
        if answer.status == 503:
            headers.append((b"retry-after", b"5"))
        elif answer.status == 429:
            headers.append((b"retry-after", str(answer.ttl or 1).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        self._observe(label, answer.status, time.perf_counter() - started)

    def _observe(self, operation: str, status: int, seconds: float) -> None:
        self._metrics.requests.labels(operation, str(status)).inc()
        self._metrics.latency.labels(operation).observe(seconds)
        if status >= 400:
            kind = "client" if status < 500 else ("unavailable" if status == 503 else "server")
            self._metrics.errors.labels(operation, kind).inc()

    async def _read(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> RawRequest | None:
        """The request's bytes; None when a browser asks for GraphiQL."""
        if scope["method"] != "GET":
            return await read_post(headers, receive)
        params = query_params(scope["query_string"])
        if "query" in params:
            return RawRequest("GET", scope["query_string"], params)
        if self._page is not None and b"text/html" in headers.get(b"accept", b""):
            return None
        raise ClientError("send a GraphQL query: POST JSON {query, variables}, or GET ?query=")

    async def _handle(
        self, scope: Scope, receive: Receive, request_id: str
    ) -> tuple[Answer, list[tuple[bytes, bytes]], str]:
        """The answer, its extra headers, and the operation label of the metrics."""
        label = "unparsed"

        def labelled(operation: str) -> None:
            nonlocal label
            label = operation

        try:
            answer, extra = await self._answer(scope, receive, request_id, labelled)
        except RateLimited as exc:
            answer, extra = limited_answer(exc), []
        except ClientError as exc:
            answer, extra = error_answer(exc.status, exc.message, exc.code), []
            if exc.status == 401:
                extra = [(b"www-authenticate", b'Bearer error="invalid_token"')]
        except DatabaseUnavailable as exc:
            log.warning("%s", exc.message, extra={"action": "database_unavailable"})
            answer, extra = error_answer(503, UNAVAILABLE, "SERVICE_UNAVAILABLE"), []
        except Exception:
            log.exception(
                "unexpected error", extra={"action": "request_failed", "request_id": request_id}
            )
            message = f"internal error (request id {request_id})"
            answer, extra = error_answer(500, message, "INTERNAL_SERVER_ERROR"), []
        return answer, extra, label

    async def _answer(
        self, scope: Scope, receive: Receive, request_id: str, labelled: Callable[[str], None]
    ) -> tuple[Answer, list[tuple[bytes, bytes]]]:
        headers = dict(scope["headers"])
        raw = await self._read(scope, headers, receive)
        if raw is None:
            assert self._page is not None
            labelled("graphiql")
            return self._page, []
        # The one header: two would let the reader decide who the caller is.
        token = bearer_token(authorization(scope["headers"]))
        claims = await self.verifier.verify(token)
        caller = await self.callers.caller(claims["sub"])
        await self.throttle.admit(caller)
        day = utc_day()
        about = self._meaning(raw)
        labelled(about.label)
        check_budget(about.cost, self.cost_budget)

        def prepare() -> tuple[GraphQLRequest, Operation | None]:
            read = raw.parse()
            return read, classify(read.query, read.operation_name)

        async def run() -> Answer:
            # The caller's own limits: returned as an answer, so that callers sharing
            # this computation can tell it was not theirs (see below).
            try:
                await self.throttle.spend(caller, about.cost)
                async with self.throttle.slot(caller):
                    return await self._execute(read, operation, caller, day, request_id)
            except RateLimited as exc:
                return limited_answer(exc)

        if not self.cache.enabled:
            read, operation = prepare()
            return await run(), [(b"x-cache", b"off")]
        key = await self.cache.key(caller.org_id, day, about.digest)
        cached = await self.cache.get(key)  # only query answers are ever stored
        if cached is not None:
            return Answer(200, cached), [(b"x-cache", b"hit")]
        read, operation = prepare()

        if operation is not None and operation.kind != OperationType.QUERY:
            # A mutation's answer depends on who sends it (an admin, a viewer) and
            # has effects: each one runs on its own, never merged with another.
            return await run(), [(b"x-cache", b"miss")]
        answer, shared = await self.cache.compute_once(key, run)
        if shared and answer.status == 429:
            # Another caller of the org was over its limits, not this one.
            answer, shared = await run(), False
        if answer.status == 503:
            answer = error_answer(503, UNAVAILABLE, "SERVICE_UNAVAILABLE")
        return answer, [(b"x-cache", b"shared" if shared else b"miss")]

    def _meaning(self, raw: RawRequest) -> Meaning:
        name = hashlib.blake2b(raw.method.encode() + raw.raw, digest_size=16).digest()
        known = self._meanings.get(name)
        if known is not MISSING:
            return known
        read = raw.parse()
        operation = classify(read.query, read.operation_name)
        known_fields = operation is not None and operation.root_fields <= self._root_fields
        label = "+".join(sorted(operation.root_fields)) if operation and known_fields else "invalid"
        parsed_query = parsed(read.query)
        cost = (
            0
            if parsed_query is None
            else document_cost(parsed_query[0], read.operation_name, read.variables)
        )
        about = Meaning(meaning(read), cost, label)
        self._meanings.put(name, about)
        return about

    async def _execute(
        self,
        read: GraphQLRequest,
        operation: Operation | None,
        caller: Caller,
        day: str,
        request_id: str,
    ) -> Answer:
        if operation and operation.kind == OperationType.SUBSCRIPTION:
            return error_answer(
                405,
                "subscriptions go over the websocket at /graphql (graphql-transport-ws)",
                "BAD_REQUEST",
            )
        if read.method == "GET" and operation and operation.kind != OperationType.QUERY:
            return error_answer(405, "mutations must be sent with POST", "BAD_REQUEST")
        lease = RequestConnection(self.services.pool, self.services.pool_timeout)
        context = RequestContext(caller, self.services, date.fromisoformat(day), request_id, lease)
        try:
            result = await self.schema.execute(
                read.query,
                variable_values=read.variables,
                context_value=context,
                operation_name=read.operation_name,
                allowed_operation_types=QUERY_ONLY if read.method == "GET" else ALL_OPERATIONS,
            )
        except CannotGetOperationTypeError as exc:
            return error_answer(400, exc.as_http_error_reason(), "BAD_REQUEST")
        except InvalidOperationTypeError as exc:
            return error_answer(405, exc.as_http_error_reason(read.method), "BAD_REQUEST")
        finally:
            # Shielded: the connection goes back even if this request is cancelled.
            await asyncio.shield(lease.release())
        payload: dict[str, Any] = {"data": result.data}
        status = 200
        if result.errors:
            errors, status = self._format_errors(result.errors, request_id)
            payload = {"errors": errors, **payload}
            if (
                result.data is None
                and status == 200
                and all(e.original_error is None for e in result.errors)
            ):
                status = 400  # refused before execution: syntax, validation, limits
                payload.pop("data")
        cacheable = operation is not None and operation.kind == OperationType.QUERY
        ttl = (
            ttl_for(operation.root_fields)
            if cacheable and operation and not result.errors
            else None
        )
        return Answer(status, _json(payload), ttl, context.days_read.ranges())

    def _format_errors(
        self, errors: list[GraphQLError], request_id: str
    ) -> tuple[list[dict[str, Any]], int]:
        formatted: list[dict[str, Any]] = []
        status = 200
        for error in errors:
            original = error.original_error
            entry: dict[str, Any] = dict(error.formatted)
            if self._page is None and "message" in entry:  # GRAPHIQL=0: no schema hints
                entry["message"] = without_suggestions(entry["message"])
            if isinstance(original, ClientError):
                entry["message"] = original.message
                entry["extensions"] = {"code": original.code}
                status = max(status, 503 if original.status == 503 else 200)
            elif isinstance(original, DatabaseUnavailable):
                log.warning("%s", original.message, extra={"action": "database_unavailable"})
                status = 503
            elif original is not None and not isinstance(original, GraphQLError):
                log.error(
                    "resolver failed",
                    exc_info=original,
                    extra={"action": "resolver_failed", "request_id": request_id},
                )
                entry = {
                    "message": f"internal error (request id {request_id})",
                    "path": error.path,
                    "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                }
            formatted.append(entry)
        return formatted, status
