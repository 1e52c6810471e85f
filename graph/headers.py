"""Requests whose headers exceed MAX_HEADER_BYTES are refused with 431 before any work.

uvicorn (with httptools) accepts headers of any size; a 32 MB `Authorization`
header then went through the token's base64 decoding and parsing on the event
loop, stalling every other request for seconds. This ASGI middleware is the
outermost layer of the app: it adds up the header bytes uvicorn hands over and
answers 431 without looking at their contents. Tokens have their own, smaller
limit (`graph/roles.py`).
"""

from __future__ import annotations

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
