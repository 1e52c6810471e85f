"""Requests whose headers exceed MAX_HEADER_BYTES are refused with 431 before any work.

Two layers: the app's middleware (exact, 8 KiB of headers) and the server's
protocol (a request head over 128 KiB is never parsed at all).

uvicorn (with httptools) accepts headers of any size; a 32 MB `Authorization`
header then went through the token's base64 decoding and parsing on the event
loop, stalling every other request for seconds. This ASGI middleware is the
outermost layer of the app: it adds up the header bytes uvicorn hands over and
answers 431 without looking at their contents. Tokens have their own, smaller
limit (`graph/roles.py`).
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_HEADER_BYTES = 8 * 1024
_BODY = json.dumps(
    {
        "errors": [
            {
                "message": f"the request's headers are larger than {MAX_HEADER_BYTES} bytes",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    },
    separators=(",", ":"),
).encode()


class HeaderLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = 0
            for name, value in scope["headers"]:
                size += len(name) + len(value)
            if size > MAX_HEADER_BYTES:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 431,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(_BODY)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _BODY})
                return
        await self.app(scope, receive, send)


# uvicorn's httptools protocol gathers a header value piece by piece as it arrives,
# copying what it has so far each time: 32 MB of one header took seconds of the event
# loop before the app saw the request. The server's protocol below stops reading a
# request whose head (request line and headers) passes MAX_HEAD_BYTES: it answers 431
# at once, discards the rest of the head without parsing it, and closes the
# connection. The app's own 8 KiB limit (above) stays the precise one; this bound is
# looser so that a GET carrying its document in the URL still fits.
MAX_HEAD_BYTES = 128 * 1024
MAX_DISCARD_BYTES = 256 * 1024 * 1024
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


def head_limited_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's `http=` argument: the httptools protocol with the head bound, or
    uvicorn's default when httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "auto"

    class HeadLimitedProtocol(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0
        _refused = False
        _discarded = 0
        _tail = b""

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0  # the next request's head

        def data_received(self, data: bytes) -> None:
            if self._refused:
                self._discard(data)
                return
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refused = True
                    self.transport.write(_431)
                    self._discard(data)
                    return
            super().data_received(data)

        def _discard(self, data: bytes) -> None:
            """Reads the rest of the head unparsed (so the client reads the 431 rather
            than a reset connection), then closes."""
            self._discarded += len(data)
            seen = self._tail + data
            if b"\r\n\r\n" in seen or self._discarded > MAX_DISCARD_BYTES:
                self.transport.close()
            self._tail = seen[-3:]

    return HeadLimitedProtocol
