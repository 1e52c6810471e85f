"""`/graphql`: transport, authentication, the response cache, then Strawberry.

Every request is authenticated (token verified, profile resolved) before
anything else; the caller's org then scopes both the cache key and the
resolvers. A cached answer is sent without running GraphQL at all. Errors a
client can act on keep their message; anything unexpected is logged with the
request id (also sent as `X-Request-Id`) and masked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import strawberry
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType as StrawberryOperation

from graph.auth import Callers, TokenVerifier, bearer_token
from graph.cache import Answer, ttl_for
from graph.context import Caller, RequestContext, Services
from graph.errors import ClientError
from graph.limits import MAX_BODY_BYTES, MAX_TOKENS
from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
JSON = "application/json"
QUERY_ONLY = (StrawberryOperation.QUERY,)
ALL_OPERATIONS = (StrawberryOperation.QUERY, StrawberryOperation.MUTATION)


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def error_answer(status: int, message: str, code: str) -> Answer:
    return Answer(status, _json({"errors": [{"message": message, "extensions": {"code": code}}]}))


@dataclass(frozen=True, slots=True)
class Operation:
    kind: OperationType
    root_fields: frozenset[str]


@lru_cache(maxsize=256)
def classify(query: str, operation_name: str | None) -> Operation | None:
    """The chosen operation's type and root fields; None when Strawberry must explain why not."""
    try:
        document = parse(query, max_tokens=MAX_TOKENS, no_location=True)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    selections = operations[0].selection_set.selections
    # A fragment at the root hides its fields: the shortest TTL then applies.
    fields = frozenset(s.name.value for s in selections if isinstance(s, FieldNode))
    return Operation(
        operations[0].operation, fields if len(fields) == len(selections) else frozenset()
    )


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    method: str
    raw: bytes


def _read_params(params: dict[str, Any], method: str, raw: bytes) -> GraphQLRequest:
    query, variables, name = (
        params.get("query"),
        params.get("variables"),
        params.get("operationName"),
    )
    if isinstance(variables, str) and variables:
        try:
            variables = json.loads(variables)
        except ValueError:
            raise ClientError("`variables` is not valid JSON") from None
    if not isinstance(query, str) or not query.strip():
        raise ClientError("send a GraphQL document in `query`")
    if variables is not None and variables != "" and not isinstance(variables, dict):
        raise ClientError("`variables` must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise ClientError("`operationName` must be a string")
    return GraphQLRequest(query, variables or None, name or None, method, raw)


class GraphQLEndpoint:
    """The ASGI app behind `/graphql` (GET and POST)."""

    def __init__(
        self,
        schema: strawberry.Schema,
        services: Services,
        verifier: TokenVerifier,
        callers: Callers,
        *,
        graphiql: bool,
    ) -> None:
        self.schema = schema
        self.services = services
        self.cache = services.cache
        self.verifier = verifier
        self.callers = callers
        self.graphiql_html = get_graphql_ide_html() if graphiql else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = uuid.uuid4().hex
        try:
            response = await self._handle(request, request_id)
        except ClientError as exc:
            response = self._respond(error_answer(exc.status, exc.message, exc.code))
            if exc.status == 401:
                response.headers["www-authenticate"] = 'Bearer error="invalid_token"'
        except DatabaseUnavailable as exc:
            log.warning("%s", exc.message, extra={"action": "database_unavailable"})
            response = self._unavailable()
        except Exception:
            log.exception(
                "unexpected error", extra={"action": "request_failed", "request_id": request_id}
            )
            response = self._respond(
                error_answer(
                    500, f"internal error (request id {request_id})", "INTERNAL_SERVER_ERROR"
                )
            )
        response.headers["x-request-id"] = request_id
        await response(scope, receive, send)

    @staticmethod
    def _respond(answer: Answer) -> Response:
        return Response(answer.body, answer.status, media_type=JSON)

    def _unavailable(self) -> Response:
        response = self._respond(
            error_answer(
                503, "the database is unavailable; retry in a few seconds", "SERVICE_UNAVAILABLE"
            )
        )
        response.headers["retry-after"] = "5"
        return response

    async def _read(self, request: Request) -> GraphQLRequest | Response:
        if request.method == "GET":
            params = dict(request.query_params)
            if "query" not in params:
                accept = request.headers.get("accept", "")
                if self.graphiql_html is not None and "text/html" in accept:
                    return HTMLResponse(self.graphiql_html)
                raise ClientError(
                    "send a GraphQL query: POST JSON {query, variables}, or GET ?query="
                )
            return _read_params(params, "GET", request.url.query.encode())
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != JSON:
            raise ClientError("send the request as JSON (Content-Type: application/json)")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise ClientError(f"the request is larger than {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise ClientError(f"the request is larger than {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(body)
        except ValueError:
            raise ClientError("the request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise ClientError("the request body must be a JSON object {query, variables}")
        return _read_params(payload, "POST", body)

    async def _handle(self, request: Request, request_id: str) -> Response:
        read = await self._read(request)
        if isinstance(read, Response):
            return read
        claims = await self.verifier.verify(bearer_token(request.headers.get("authorization")))
        caller = await self.callers.caller(claims["sub"])
        today = datetime.now(UTC).date()

        async def run() -> Answer:
            return await self._execute(read, caller, today.isoformat(), request_id)

        source = "off"
        if not self.cache.enabled:
            answer = await run()
        else:
            digest = hashlib.blake2b(read.method.encode() + read.raw, digest_size=16).hexdigest()
            key = await self.cache.key(caller.org_id, today.isoformat(), digest)
            cached = await self.cache.get(key)
            if cached is not None:
                return Response(cached, 200, media_type=JSON, headers={"x-cache": "hit"})
            answer, shared = await self.cache.compute_once(key, run)
            source = "shared" if shared else "miss"
        response = self._unavailable() if answer.status == 503 else self._respond(answer)
        response.headers["x-cache"] = source
        return response

    async def _execute(
        self, read: GraphQLRequest, caller: Caller, day: str, request_id: str
    ) -> Answer:
        operation = classify(read.query, read.operation_name)
        if read.method == "GET" and operation and operation.kind != OperationType.QUERY:
            return error_answer(405, "mutations must be sent with POST", "BAD_REQUEST")
        context = RequestContext(
            caller, self.services, datetime.fromisoformat(day).date(), request_id
        )
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
        return Answer(status, _json(payload), ttl)

    def _format_errors(
        self, errors: list[GraphQLError], request_id: str
    ) -> tuple[list[dict[str, Any]], int]:
        formatted: list[dict[str, Any]] = []
        status = 200
        for error in errors:
            original = error.original_error
            entry: dict[str, Any] = dict(error.formatted)
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
