"""`/graphql` over a websocket: the graphql-transport-ws protocol, for `metricsChanged`.

Strawberry's own websocket view would own the socket; here the socket must also
be closed from outside its handler (the token expires, the user's profile is
removed, the client reads too slowly), with the codes the protocol reserves, so
the protocol's few messages are handled in this module and Strawberry executes
the documents (`Schema.stream`, subscriptions only).

The token travels in `connection_init`'s payload as `{"Authorization": "Bearer …"}`
and is checked like an HTTP request's (`TokenVerifier`, `Callers`). Close codes:

- 4403 a missing, bad or unauthorised token; the token's `exp` passing (the socket
  is closed at that moment); the user's profile removed or moved to another org
  (`graph/profile_notify.py` hooks);
- 4429 over `HL_ANALYTICS_WS_MAX_PER_USER` or `HL_ANALYTICS_WS_MAX_CONNECTIONS`
  (also, as the protocol says, a second `connection_init`);
- 4008 a subscription with more than `HL_ANALYTICS_WS_QUEUE` events waiting to be
  sent (the client stopped reading);
- 4400 a message that is not the protocol's, 4401 `subscribe` before the
  acknowledgement, 4408 no `connection_init` in time, 4409 a duplicate id,
  1013 the database unavailable while the access is checked again.

The websocket server is `websockets` (uvicorn's `websockets-sansio`), whose sends wait
while the client's buffers are full: that is what makes a slow client's feed fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

import strawberry
from graphql import GraphQLError
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from graph.auth import Callers, TokenVerifier, bearer_token
from graph.context import Caller, SubscriptionContext
from graph.errors import ClientError
from graph.fanout import Feed, Hub
from graph.limits import MAX_BODY_BYTES
from graph.requests import classify
from hl_core import telemetry
from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
MAX_OPERATIONS = 10  # subscriptions at once on one socket
FORBIDDEN, TOO_MANY, TOO_SLOW = 4403, 4429, 4008
BAD_MESSAGE, UNAUTHORIZED, INIT_TIMEOUT, DUPLICATE_ID = 4400, 4401, 4408, 4409
TRY_AGAIN_LATER = 1013
SUBSCRIPTIONS_ONLY = (OperationType.SUBSCRIPTION,)


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Sockets:
    """The instance's open subscription sockets, counted per user and in all."""

    def __init__(self, callers: Callers, max_per_user: int, max_total: int) -> None:
        self.callers = callers
        self.max_per_user = max_per_user
        self.max_total = max_total
        self._by_user: dict[str, set[Socket]] = {}
        self._total = 0
        self._waiting = 0  # admitted sockets still waiting for their connection_init
        self._checks: set[asyncio.Task[None]] = set()
        self._metrics = telemetry.live_metrics()

    def __len__(self) -> int:
        return self._total

    def admit(self) -> bool:
        """Whether a new socket may wait for its `connection_init`. Sockets that never
        authenticate are held for INIT_TIMEOUT_S each and are nobody's, so the per-user
        cap cannot bound them: at most HL_ANALYTICS_WS_MAX_CONNECTIONS wait at once
        (beside as many authenticated ones)."""
        if self._waiting >= self.max_total:
            return False
        self._waiting += 1
        return True

    def admitted(self) -> None:
        """A socket admitted by `admit` is done waiting (authenticated, refused or gone)."""
        self._waiting -= 1

    def add(self, socket: Socket, user_id: str) -> None:
        mine = self._by_user.get(user_id, set())
        if len(mine) >= self.max_per_user:
            raise Refused(
                TOO_MANY,
                f"too many subscription sockets for this user ({self.max_per_user}, "
                "HL_ANALYTICS_WS_MAX_PER_USER): close one first",
            )
        if self._total >= self.max_total:
            raise Refused(
                TOO_MANY,
                f"this instance holds its most subscription sockets ({self.max_total}, "
                "HL_ANALYTICS_WS_MAX_CONNECTIONS): retry later",
            )
        self._by_user.setdefault(user_id, set()).add(socket)
        self._total += 1
        self._metrics.sockets.inc()

    def remove(self, socket: Socket, user_id: str) -> None:
        mine = self._by_user.get(user_id)
        if mine is None or socket not in mine:
            return
        mine.discard(socket)
        self._total -= 1
        self._metrics.sockets.dec()
        if not mine:
            del self._by_user[user_id]

    def profile_changed(self, user_id: str) -> None:
        """`ProfileListener`'s hook: the user's profile changed ("": anyone's may have)."""
        users = list(self._by_user) if not user_id else [user_id]
        for user in users:
            sockets = list(self._by_user.get(user, ()))
            if sockets:
                task = asyncio.create_task(self._recheck(user, sockets))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)

    async def _recheck(self, user_id: str, sockets: list[Socket]) -> None:
        """Closes the user's sockets unless the profile still gives the same org."""
        try:
            caller: Caller | None = await self.callers.caller(user_id)
        except ClientError:
            caller = None
        except DatabaseUnavailable:
            # The access cannot be confirmed: the client reconnects and is checked anew.
            for socket in sockets:
                await socket.close(TRY_AGAIN_LATER, "the database is unavailable; reconnect")
            return
        for socket in sockets:
            if caller is None or caller.org_id != socket.org_id:
                await socket.close(FORBIDDEN, "the user's access was removed")


class SubscriptionEndpoint:
    """The ASGI app of websockets at `/graphql`."""

    def __init__(
        self,
        schema: strawberry.Schema,
        verifier: TokenVerifier,
        callers: Callers,
        hub: Hub,
        sockets: Sockets,
    ) -> None:
        self.schema = schema
        self.verifier = verifier
        self.callers = callers
        self.hub = hub
        self.sockets = sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        if PROTOCOL not in scope.get("subprotocols", []):
            # Before accepting: the client gets HTTP 403 for the upgrade.
            await websocket.close(code=4406, reason=f"Subprotocol not acceptable: use {PROTOCOL}")
            return
        # Admitted before the handshake is answered, so it is counted the moment the
        # client sees its socket open.
        if not self.sockets.admit():
            await websocket.accept(subprotocol=PROTOCOL)
            reason = "this instance holds its most subscription sockets: retry later"
            await websocket.close(code=TOO_MANY, reason=reason)
            return
        socket = Socket(self, websocket)
        try:
            await websocket.accept(subprotocol=PROTOCOL)
        except BaseException:
            socket.done_waiting()
            raise
        await socket.run()

    async def authenticate(self, payload: object) -> tuple[Caller, int]:
        """The caller and its token's `exp`, from `connection_init`'s payload."""
        header = None
        if isinstance(payload, Mapping):
            for name, value in payload.items():
                if isinstance(name, str) and name.lower() == "authorization":
                    header = value if isinstance(value, str) else None
        try:
            claims = await self.verifier.verify(bearer_token(header))
            return await self.callers.caller(claims["sub"]), int(claims["exp"])
        except ClientError as exc:
            raise Refused(FORBIDDEN, _reason(f"Forbidden: {exc.message}")) from None
        except DatabaseUnavailable:
            raise Refused(TRY_AGAIN_LATER, "the database is unavailable; retry") from None


def _formatted(errors: list[GraphQLError], *, document: bool = False) -> list[dict[str, Any]]:
    """Errors as the HTTP endpoint shows them: a client's with its message, the rest masked.

    `document`: errors found before execution (syntax, validation, the operation's type
    or name) are about the client's document whatever exception graphql-core wrapped, so
    they are shown, not masked and logged as failures (a query sent here learns why)."""
    shown: list[dict[str, Any]] = []
    for error in errors:
        original = error.original_error
        entry: dict[str, Any] = dict(error.formatted)
        if isinstance(original, ClientError):
            entry["message"] = original.message
            entry["extensions"] = {"code": original.code}
        elif not document and original is not None and not isinstance(original, GraphQLError):
            log.error("subscription failed", exc_info=original, extra={"action": "ws_failed"})
            entry = {"message": "internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        shown.append(entry)
    return shown


def _reason(text: str) -> str:
    """A close reason: at most 123 bytes of UTF-8, as the websocket protocol allows."""
    return text.encode()[:123].decode(errors="ignore")


class Socket:
    """One websocket: its protocol state, its subscriptions, and how it ends."""

    def __init__(self, endpoint: SubscriptionEndpoint, websocket: WebSocket) -> None:
        self.endpoint = endpoint
        self.websocket = websocket
        self.caller: Caller | None = None
        self.operations: dict[str, asyncio.Task[None]] = {}
        self._init_received = False
        self._closed = False
        self._send_lock = asyncio.Lock()
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[Any] | None = None
        self._aborted = False
        self._waiting = True  # admitted by `Sockets.admit`, no connection_init handled yet

    @property
    def org_id(self) -> Any:
        return self.caller.org_id if self.caller else None

    async def run(self) -> None:
        self._main = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(INIT_TIMEOUT_S, self._init_timeout))
        try:
            while True:
                message = await self._receive()
                if message is not None and not self._closed:
                    await self._handle(message)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if not self._aborted:
                raise
        finally:
            self._closed = True
            self.done_waiting()
            for timer in self._timers:
                timer.cancel()
            operations = list(self.operations.values())
            for task in operations:
                task.cancel()
            for task in operations:
                with contextlib.suppress(BaseException):
                    await task
            if self.caller is not None:
                self.endpoint.sockets.remove(self, self.caller.user_id)

    async def _receive(self) -> dict[str, Any] | None:
        """The next message; None when it was not one (the socket is then being closed)."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if self._closed:
            return None
        if text is None:
            await self.close(BAD_MESSAGE, "WebSocket message type must be text")
            return None
        if len(text) > MAX_BODY_BYTES:
            await self.close(BAD_MESSAGE, f"a message is at most {MAX_BODY_BYTES} bytes")
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            await self.close(BAD_MESSAGE, "WebSocket message must be valid JSON")
            return None
        except RecursionError:  # the json module recurses once per nesting level
            await self.close(BAD_MESSAGE, "WebSocket message is nested too deeply")
            return None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            await self.close(BAD_MESSAGE, "Failed to parse message")
            return None
        return parsed

    def _init_timeout(self) -> None:
        if not self._init_received:
            self._spawn(self.close(INIT_TIMEOUT, "Connection initialisation timeout"))

    async def _init(self, message: dict[str, Any]) -> None:
        if self._init_received:
            await self.close(TOO_MANY, "Too many initialisation requests")
            return
        self._init_received = True
        try:
            caller, exp = await self.endpoint.authenticate(message.get("payload"))
            self.done_waiting()
            self.endpoint.sockets.add(self, caller.user_id)
        except Refused as refused:
            await self.close(refused.code, refused.reason)
            return
        self.caller = caller
        loop = asyncio.get_running_loop()
        delay = max(0.0, exp - time.time())
        self._timers.append(loop.call_later(delay, self._expired))
        await self._send({"type": "connection_ack"})

    def done_waiting(self) -> None:
        if self._waiting:
            self._waiting = False
            self.endpoint.sockets.admitted()

    def _expired(self) -> None:
        self._spawn(self.close(FORBIDDEN, "Forbidden: the token has expired"))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "connection_init":
            await self._init(message)
        elif kind == "subscribe" and self.caller is None:
            await self.close(UNAUTHORIZED, "Unauthorized")
        elif kind == "subscribe":
            await self._subscribe(message)
        elif kind == "complete":
            task = self.operations.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        else:
            await self.close(BAD_MESSAGE, _reason(f"Unknown message type: {kind}"))

    async def _subscribe(self, message: dict[str, Any]) -> None:
        op_id, payload = message.get("id"), message.get("payload")
        if not isinstance(op_id, str) or not isinstance(payload, dict):
            await self.close(BAD_MESSAGE, "Failed to parse message")
            return
        query, variables = payload.get("query"), payload.get("variables")
        name = payload.get("operationName")
        if (
            not isinstance(query, str)
            or not isinstance(variables, dict | None)
            or not isinstance(name, str | None)
        ):
            await self.close(BAD_MESSAGE, "Failed to parse message")
            return
        if op_id in self.operations:
            await self.close(DUPLICATE_ID, _reason(f"Subscriber for {op_id} already exists"))
            return
        if len(self.operations) >= MAX_OPERATIONS:
            error = {"message": f"at most {MAX_OPERATIONS} subscriptions on one socket"}
            await self._send({"id": op_id, "type": "error", "payload": [error]})
            return
        try:
            classify(query, name)  # several operations need a name, as over HTTP
        except ClientError as exc:
            await self._send({"id": op_id, "type": "error", "payload": [{"message": exc.message}]})
            return
        operation = self._operation(op_id, query, variables, name)
        self.operations[op_id] = asyncio.get_running_loop().create_task(operation)

    def _open_feed(self) -> Feed:
        assert self.caller is not None
        return self.endpoint.hub.open(
            self.caller.org_id,
            lambda: self._spawn(
                self.close(TOO_SLOW, "too slow: events were not read in time; reconnect")
            ),
        )

    async def _operation(
        self, op_id: str, query: str, variables: dict[str, Any] | None, name: str | None
    ) -> None:
        assert self.caller is not None
        context = SubscriptionContext(self.caller, self._open_feed)
        try:
            results = await self.endpoint.schema.stream(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=name,
                allowed_operation_types=SUBSCRIPTIONS_ONLY,
            )
            async with contextlib.aclosing(results):
                async for result in results:
                    if isinstance(result, PreExecutionError):
                        errors = _formatted(result.errors or [], document=True)
                        await self._send({"id": op_id, "type": "error", "payload": errors})
                        return
                    body: dict[str, Any] = {"data": getattr(result, "data", None)}
                    errors_of = getattr(result, "errors", None)
                    if errors_of:
                        body["errors"] = _formatted(errors_of)
                    await self._send({"id": op_id, "type": "next", "payload": body})
            await self._send({"id": op_id, "type": "complete"})
        except GraphQLError as error:  # a syntax error is raised, not returned
            await self._send(
                {"id": op_id, "type": "error", "payload": _formatted([error], document=True)}
            )
        finally:
            if self.operations.get(op_id) is asyncio.current_task():
                del self.operations[op_id]

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if self._closed or self.websocket.application_state != WebSocketState.CONNECTED:
                return
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.send_text(json.dumps(message, separators=(",", ":")))

    async def close(self, code: int, reason: str) -> None:
        """Closes the socket once (later calls do nothing) and stops its subscriptions."""
        if self._closed:
            return
        self._closed = True
        for task in list(self.operations.values()):
            if task is not asyncio.current_task():
                task.cancel()
        telemetry.live_metrics().closed.labels(str(code)).inc()
        log.info(
            "subscription socket closed: %s",
            reason,
            extra={"action": "ws_closed", "code": code},
        )
        # Not behind the send lock: a send blocked on a client that stopped reading
        # must not hold the close back. The close frame itself waits for the client's
        # buffers too: past CLOSE_TIMEOUT_S the socket is given up on this side.
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.websocket.close(code=code, reason=_reason(reason))
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            if self._main is not None and self._main is not asyncio.current_task():
                self._aborted = True
                self._main.cancel()
