"""Bearer JWT → caller (user, org, role), and the `token` command.

PyJWT verifies the signature, `exp` (with a small leeway), `aud`, and `iss`
when JWT_ISSUER is set. The key is chosen from the token's `alg` header among
the algorithms this server accepts, and PyJWT is told to accept exactly that
one: HS256 only with JWT_SECRET, RS256/ES256 only with a JWKS key whose own
algorithm matches, so `alg: none` and HS/RS confusion are impossible.
Profiles (`sub` → org and role) are cached for a few seconds, so a cached
answer does not need the database, while every request is still authenticated.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import jwt
from psycopg_pool import AsyncConnectionPool

from graph.context import Caller
from graph.errors import NoProfile, Unauthenticated
from graph.jwks import JwksKeys
from graph.singleflight import SingleFlight
from hl_analytics.errors import SettingsError
from hl_analytics.settings import Settings
from storage import metrics
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
    return token


class TokenVerifier:
    def __init__(self, settings: Settings, jwks: JwksKeys | None) -> None:
        self.secret = settings.jwt_secret
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.jwks = jwks
        self.required = ["exp", "sub", "aud"] + (["iss"] if self.issuer else [])
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

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
        remembered = self._verified.get(token)
        if remembered is not None and remembered[0] > time.monotonic():
            claims = remembered[1]
            if claims["exp"] + LEEWAY_S < time.time():
                raise Unauthenticated("the token has expired: get a new one")
            return claims
        claims = await self._verify(token)
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = (time.monotonic() + REMEMBER_S, claims)
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
        return claims


class Callers:
    """`sub` → Caller through `user_profiles`, with a short-lived cache.

    When an entry expires under load, every request of that user would look it
    up at once; the first lookup is shared with the others instead.
    """

    def __init__(self, pool: AsyncConnectionPool, pool_timeout: float) -> None:
        self.pool = pool
        self.pool_timeout = pool_timeout
        self._cache: dict[str, tuple[float, Profile | None]] = {}
        self._lookups: SingleFlight[str, Profile | None] = SingleFlight()

    async def _fetch(self, user_id: str) -> Profile | None:
        async with metrics.borrow(self.pool, self.pool_timeout) as conn:
            return await metrics.get_profile(conn, user_id)

    async def _lookup(self, user_id: str) -> Profile | None:
        profile, shared = await self._lookups.run(user_id, lambda: self._fetch(user_id))
        if shared:
            return profile
        if len(self._cache) >= MAX_PROFILES:
            self._cache.clear()
        ttl = PROFILE_TTL_S if profile else NO_PROFILE_TTL_S
        self._cache[user_id] = (time.monotonic() + ttl, profile)
        return profile

    async def caller(self, user_id: str) -> Caller:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            profile = cached[1]
        else:
            profile = await self._lookup(user_id)
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
        "iat": now,
        "exp": now + ttl_s,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def token_cmd(settings: Settings, args: argparse.Namespace) -> int:
    """Signs with JWT_SECRET; without it, in a folder where the demo ran, with the
    demo's secret (kept in its data folder), so the token works against the demo."""
    if not settings.jwt_secret:
        from hl_analytics.demo import saved_jwt_secret

        settings = replace(settings, jwt_secret=saved_jwt_secret(settings.data_dir))
    print(issue_token(settings, args.user_id, args.ttl))
    return 0
