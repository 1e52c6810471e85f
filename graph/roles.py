"""Claims a verified token must also satisfy before its `sub` is looked up.

PyJWT checks the signature, `exp`, `nbf`, `aud` and `iss`. Two things it leaves to us:

- **The `role` claim.** Supabase signs its legacy API keys with `role` = `anon`
  or `service_role`, and a user's session with `authenticated`; a `sub` and an
  `aud` that match a profile are not enough. Only a `role` listed in JWT_ROLES
  (default `authenticated`) is accepted; a token without one is refused, and so
  is an anonymous sign-in (`is_anonymous: true`), which Supabase also signs as
  `authenticated`.
- **Registered claims of the wrong type.** PyJWT accepts `"exp": "1893456000"`
  (it calls `int()`), which later arithmetic on the claim does not. `exp`,
  `nbf` and `iat` must be JSON integers of at most 64 bits, checked before the token
  is remembered.

A token longer than MAX_TOKEN_BYTES is refused before it is decoded at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph.errors import Unauthenticated

MAX_TOKEN_BYTES = 4096
NUMERIC_CLAIMS = ("exp", "nbf", "iat")
# JSON integers have no bound; a time past 64 bits is no time (and a socket's timer at
# `exp` cannot be set: the float arithmetic overflows).
CLAIM_MIN, CLAIM_MAX = -(2**63), 2**63 - 1


def check_size(token: str) -> None:
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthenticated(f"the bearer token is longer than {MAX_TOKEN_BYTES} bytes")


def check_claims(claims: Mapping[str, Any], roles: tuple[str, ...]) -> None:
    for name in NUMERIC_CLAIMS:
        value = claims.get(name)
        if name in claims and (type(value) is not int or not CLAIM_MIN <= value <= CLAIM_MAX):
            raise Unauthenticated(f"the token's `{name}` claim must be an integer (seconds)")
    role = claims.get("role")
    if role is None:
        raise Unauthenticated("the token has no `role` claim")
    if not isinstance(role, str) or role not in roles:
        shown = role if isinstance(role, str) and len(role) <= 64 else type(role).__name__
        raise Unauthenticated(f"tokens with role {shown!r} are not accepted here")
    if claims.get("is_anonymous", False) is not False:
        raise Unauthenticated("anonymous sign-ins are not accepted here: sign in as a user")
