"""Signing keys from a JWKS URL, cached, refreshed on rotation.

PyJWT parses the keys (`PyJWKSet`); its own `PyJWKClient` fetches with blocking
urllib, which would stall the event loop, so the set is fetched here with httpx.
Keys are kept for `ttl` seconds; a token naming an unknown `kid` triggers a
refetch (at most every `min_refresh` seconds, so bogus kids cannot hammer the
key server), which is how a rotated key is picked up. When the key server is
down, the last good set keeps being used.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import jwt

from graph.errors import ServiceUnavailable, Unauthenticated

log = logging.getLogger(__name__)


class JwksKeys:
    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        ttl: float = 300.0,
        min_refresh: float = 10.0,
    ) -> None:
        self.url = url
        self.client = client
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._keys: list[jwt.PyJWK] = []
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    def _find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is None:
            # Without a kid, only an unambiguous set can be used.
            candidates = [k for k in self._keys if k.algorithm_name == alg]
            return candidates[0] if len(candidates) == 1 else None
        for key in self._keys:
            # The key's own algorithm must be the token's: no RSA key used as HMAC secret.
            if key.key_id == kid and key.algorithm_name == alg:
                return key
        return None

    async def _refresh(self) -> None:
        try:
            response = await self.client.get(self.url, timeout=5.0)
            response.raise_for_status()
            body = response.json()
            if not isinstance(body, dict):  # PyJWT would fail on it with AttributeError
                raise ValueError(f"a JWKS is a JSON object, not {type(body).__name__}")
            keys = jwt.PyJWKSet.from_dict(body).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            log.warning(
                "cannot fetch the JWKS from %s: %s",
                self.url,
                exc,
                extra={"action": "jwks_fetch_failed"},
            )
            if not self._keys:
                raise ServiceUnavailable(
                    "cannot fetch the signing keys (JWT_JWKS_URL); retry in a few seconds"
                ) from None
            return
        finally:
            self._fetched_at = time.monotonic()
        self._keys = list(keys)
        log.info("loaded %d signing key(s)", len(self._keys), extra={"action": "jwks_loaded"})

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        key = self._find(kid, alg) if age < self.ttl else None
        if key is None:
            async with self._lock:
                age = time.monotonic() - self._fetched_at
                if age >= self.ttl or (self._find(kid, alg) is None and age >= self.min_refresh):
                    await self._refresh()
            key = self._find(kid, alg)
        if key is None and not self._keys:
            raise ServiceUnavailable(
                "cannot fetch the signing keys (JWT_JWKS_URL); retry in a few seconds"
            )
        if key is None:
            raise Unauthenticated(f"no signing key {kid!r} for {alg} in the key set")
        return key
