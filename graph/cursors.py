"""Opaque pagination cursors, bound to the org (and the wallet) they were issued for.

A cursor is base64url of a small JSON object: what it pages (`k`), the org (`o`),
an optional scope such as the wallet's address (`s`) and the keyset position (`p`).
Decoding checks all of it against the request; anything else, including a cursor of
another org or wallet, is a `BAD_USER_INPUT`, never a 500.

Cursors are not signed, so a client can forge one of its own org; the org check keeps
it inside the org, and the position may only hold what the keyset statements can bind
(a bigint, text without NUL or lone surrogates): anything else is refused here rather
than failing the statement.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from graph.arguments import encodable
from graph.errors import BadUserInput

MAX_CURSOR_CHARS = 512
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def encode(kind: str, org_id: uuid.UUID, position: list[Any], scope: str | None = None) -> str:
    body = {"k": kind, "o": str(org_id), "s": scope, "p": position}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(
    cursor: str, kind: str, org_id: uuid.UUID, scope: str | None = None, *, argument: str = "after"
) -> list[Any]:
    """The keyset position of a cursor this server issued for (kind, org, scope)."""
    bad = BadUserInput(
        f"{argument}: {cursor[:40]!r} is not a cursor of this list: "
        "pass an endCursor (or edge cursor) this list returned"
    )
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if (
        not isinstance(body, dict)
        or body.get("k") != kind
        or body.get("o") != str(org_id)
        or body.get("s") != scope
        or not isinstance(body.get("p"), list)
        or not all(_bindable(v) for v in body["p"])
    ):
        raise bad
    position: list[Any] = body["p"]
    return position


def _bindable(value: object) -> bool:
    """Whether a position's value can be bound as PostgreSQL's bigint or text."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return BIGINT_MIN <= value <= BIGINT_MAX
    if isinstance(value, str):
        return "\x00" not in value and encodable(value)
    return False
