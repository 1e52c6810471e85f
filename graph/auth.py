"""Bearer JWT → caller (user, org, role), and the `token` command.

PyJWT verifies the signature, `exp` (with a small leeway), `aud`, and `iss`
when JWT_ISSUER is set. The key is chosen from the token's `alg` header among
the algorithms this server accepts, and PyJWT is told to accept exactly that
one: HS256 only with JWT_SECRET, RS256/ES256 only with a JWKS key whose own
algorithm matches, so `alg: none` and HS/RS confusion are impossible.
The `role` claim and the types of registered claims are checked in `graph/roles.py`.
Profiles (`sub` → org and role) are cached for a few seconds, so a cached
answer does not need the database, while every request is still authenticated;
a change of a profile makes every instance forget it at once (`graph/profile_notify.py`).
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from psycopg_pool import AsyncConnectionPool

from graph.context import Caller
from graph.errors import NoProfile, Unauthenticated
from graph.jwks import JwksKeys
from graph.roles import check_claims, check_size
from graph.singleflight import SingleFlight
from graph.ttlmap import MISSING, TtlMap
from hl_core.errors import SettingsError
from hl_core.settings import Settings
from storage import dashboard
from storage.db import async_borrow
from storage.orgs import Profile

LEEWAY_S = 10
ASYMMETRIC = ("RS256", "ES256")
PROFILE_TTL_S = 10.0
NO_PROFILE_TTL_S = 2.0
MAX_PROFILES = 10_000
# How long a verified token is remembered: also how long a key withdrawn from the
# JWKS keeps working for tokens already seen.
REMEMBER_S = 60.0
MAX_REMEMBERED = 10_000


def _storable(text: str) -> bool:
    """Whether PostgreSQL can hold `text`: no NUL, and valid Unicode (JSON can carry a
    lone surrogate, UTF-8 cannot), so looking it up cannot fail."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def authorization(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's one `Authorization` header (None when absent). Two are refused: which
    one names the caller would depend on the reader (a proxy adding its own, a client
    sending one too), so neither is trusted."""
    found = [value for name, value in headers if name.lower() == b"authorization"]
    if len(found) > 1:
        raise Unauthenticated("several Authorization headers: send exactly one")
    return found[0].decode("latin-1") if found else None


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthenticated(
            "no bearer token: send `Authorization: Bearer <JWT>` "
            "(a development token: `hl-analytics token USER_ID`)"
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthenticated("malformed Authorization header: expected `Bearer <JWT>`")
    if not token.isascii():
        # A JWT is base64url; a websocket's JSON payload can carry any string, lone
        # surrogates included, which PyJWT's own encoding of the token would fail on.
        raise Unauthenticated("the bearer token is not a JWT")
    return token


class TokenVerifier:
    def __init__(self, settings: Settings, jwks: JwksKeys | None) -> None:
        self.secret = settings.jwt_secret
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.jwks = jwks
        self.roles = settings.jwt_roles
        self.required = ["exp", "sub", "aud"] + (["iss"] if self.issuer else [])
        self._verified: TtlMap[str, dict[str, Any]] = TtlMap(MAX_REMEMBERED, ttl_s=REMEMBER_S)

    async def _key(self, token: str) -> tuple[Any, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg == "HS256" and self.secret:
            return self.secret, alg
        if alg in ASYMMETRIC and self.jwks is not None:
            kid = header.get("kid")
            jwk = await self.jwks.key_for(kid if isinstance(kid, str) else None, alg)
            return jwk.key, alg
        raise Unauthenticated(f"tokens signed with alg {alg!r} are not accepted here")

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; Unauthenticated when anything is wrong with it.

        A token verified in the last minute is not verified again (PyJWT's checks
        cost more than a cached answer), but its expiry is checked every time.
        """
        check_size(token)
        remembered = self._verified.get(token)
        if remembered is not MISSING:
            claims = remembered
            if claims["exp"] + LEEWAY_S < time.time():
                raise Unauthenticated("the token has expired: get a new one")
            return claims
        claims = await self._verify(token)
        self._verified.put(token, claims)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        key, alg = await self._key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": self.required},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired: get a new one") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the token's audience is not {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"the token's issuer is not {self.issuer!r}") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthenticated("the token's `sub` claim must be a non-empty string")
        if not _storable(claims["sub"]):
            raise Unauthenticated(
                "the token's `sub` claim must be text without NUL characters or lone surrogates"
            )
        check_claims(claims, self.roles)
        return claims


class Callers:
    """`sub` → Caller through `user_profiles`, with a short-lived cache.

    When an entry expires under load, every request of that user would look it
    up at once; the first lookup is shared with the others instead.
    """

    def __init__(self, pool: AsyncConnectionPool, pool_timeout: float) -> None:
        self.pool = pool
        self.pool_timeout = pool_timeout
        self._cache: TtlMap[str, Profile | None] = TtlMap(MAX_PROFILES)
        self._lookups: SingleFlight[tuple[str, int], Profile | None] = SingleFlight()
        # Moves on every forget, so a lookup that began before a change is not kept.
        self._generation = 0

    def forget(self, user_id: str) -> None:
        """The user's profile changed (graph/profile_notify.py): look it up again."""
        self._generation += 1
        self._cache.pop(user_id)

    def forget_all(self) -> None:
        self._generation += 1
        self._cache.clear()

    async def _fetch(self, user_id: str) -> Profile | None:
        async with async_borrow(self.pool, self.pool_timeout) as conn:
            return await dashboard.get_profile(conn, user_id)

    async def _lookup(self, user_id: str) -> Profile | None:
        generation = self._generation
        profile, shared = await self._lookups.run(
            (user_id, generation), lambda: self._fetch(user_id)
        )
        if shared or generation != self._generation:
            return profile
        self._cache.put(user_id, profile, PROFILE_TTL_S if profile else NO_PROFILE_TTL_S)
        return profile

    async def caller(self, user_id: str) -> Caller:
        cached = self._cache.get(user_id)
        profile = await self._lookup(user_id) if cached is MISSING else cached
        if profile is None:
            raise NoProfile(
                f"user {user_id!r} has no profile: an admin adds it with "
                "`hl-analytics users add USER_ID --org ORG_ID --role viewer`"
            )
        return Caller(profile.user_id, profile.org_id, profile.role)


def issue_token(settings: Settings, user_id: str, ttl_s: int) -> str:
    """A development token signed with JWT_SECRET, accepted by this API. A `ttl_s` of
    0 or less gives a token already expired (for testing a client's handling)."""
    if not settings.jwt_secret:
        raise SettingsError(
            "JWT_SECRET is not set, and no demo ran with this data folder "
            f"({settings.data_dir}): set JWT_SECRET, or run it where `hl-analytics demo` ran"
        )
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "aud": settings.jwt_audience,
        "role": settings.jwt_roles[0],
        "iat": now,
        "exp": now + ttl_s,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
