"""The authentication matrix: every bad token is 401, a token without profile 403,
and neither ever gets data. HS256 with a shared secret; RS256 and ES256 from a JWKS
served over HTTP by a small local server, with key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hl_analytics.cli import main
from tests.integration.graph.conftest import (
    SECRET,
    Api,
    make_token,
    running_api,
    serve,
    settings,
)
from tests.integration.graph.seed import W3, Seeded

QUERY = "{ dashboardSummary { trackedWallets } }"
ISSUER = "https://issuer.test/auth/v1"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private_key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    entry: dict[str, Any] = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**entry, "kid": kid, "alg": alg, "use": "sig"}


def signed(private_key: Any, alg: str, kid: str | None, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "sub": "alice",
        "aud": "authenticated",
        "role": "authenticated",
        "iss": ISSUER,
        "exp": now + 600,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private_key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def crafted(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token made by hand, as an attacker would (PyJWT refuses to make these)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b""
    if key is not None:
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


class KeyServer:
    def __init__(self) -> None:
        self.keys = [jwk(RSA_KEY, "rsa-1", "RS256"), jwk(EC_KEY, "ec-1", "ES256")]
        self.fetches = 0
        self.body: object = None  # another answer than the key set, when set
        self.app = Starlette(routes=[Route("/jwks.json", self.jwks)])

    async def jwks(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse({"keys": self.keys} if self.body is None else self.body)


@pytest.fixture
async def keys() -> AsyncIterator[tuple[KeyServer, str]]:
    server = KeyServer()
    async with serve(server.app) as url:
        yield server, url + "/jwks.json"


@pytest.fixture
async def strict_api(
    db_url: str, seeded: Seeded, keys: tuple[KeyServer, str]
) -> AsyncIterator[Api]:
    """HS256 and JWKS both configured, and an issuer required."""
    config = settings(JWT_JWKS_URL=keys[1], JWT_ISSUER=ISSUER)
    async with running_api(db_url, seeded, config) as instance:
        yield instance


def assert_refused(response: httpx.Response, status: int, code: str, words: str = "") -> None:
    payload = response.json()
    assert response.status_code == status, payload
    assert "data" not in payload
    assert payload["errors"][0]["extensions"]["code"] == code
    assert words in payload["errors"][0]["message"]
    assert response.headers["x-request-id"]


async def test_no_header(api: Api) -> None:
    response = await api.post(QUERY, user=None)
    assert_refused(response, 401, "UNAUTHENTICATED", "Authorization: Bearer")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Token abc", "Bearer", "Bearer a b", "bearer", "Basic YWxpY2U6cHc="]
)
async def test_malformed_header(api: Api, header: str) -> None:
    response = await api.post(QUERY, user=None, headers={"Authorization": header})
    assert_refused(response, 401, "UNAUTHENTICATED")


async def test_two_authorization_headers_name_no_caller(api: Api) -> None:
    """Which of two tokens counts would depend on who reads them: neither does."""
    both = [("Authorization", f"Bearer {api.token(u)}") for u in ("bob", "alice")]
    response = await api.client.post(api.url + "/graphql", json={"query": QUERY}, headers=both)
    assert_refused(response, 401, "UNAUTHENTICATED", "several Authorization headers")


async def test_not_a_jwt(api: Api) -> None:
    assert_refused(await api.post(QUERY, token="abc.def"), 401, "UNAUTHENTICATED", "not a JWT")


async def test_bad_signature(api: Api) -> None:
    token = make_token("alice", secret="another-secret-of-enough-length-0123456789")
    assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", "Signature")


async def test_tampered_claims(api: Api) -> None:
    header, _, signature = make_token("andy").split(".")
    now = int(time.time())
    claims = {"sub": "alice", "aud": "authenticated", "exp": now + 600}
    token = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED")


async def test_expired_and_leeway(api: Api) -> None:
    expired = make_token("alice", expires_in=-3600)
    assert_refused(await api.post(QUERY, token=expired), 401, "UNAUTHENTICATED", "expired")
    # A few seconds of clock skew are tolerated.
    assert (await api.post(QUERY, token=make_token("alice", expires_in=-3))).status_code == 200


async def test_wrong_or_missing_audience(api: Api) -> None:
    wrong = make_token("alice", audience="someone-else")
    assert_refused(await api.post(QUERY, token=wrong), 401, "UNAUTHENTICATED", "audience")
    missing = make_token("alice", audience=None)
    assert_refused(await api.post(QUERY, token=missing), 401, "UNAUTHENTICATED", "aud")


async def test_alg_none(api: Api) -> None:
    now = int(time.time())
    claims = {"sub": "alice", "aud": "authenticated", "exp": now + 600}
    for alg in ("none", "None", "NONE"):
        token = crafted({"alg": alg, "typ": "JWT"}, claims, None)
        assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", alg)


async def test_unknown_user_is_forbidden(api: Api) -> None:
    response = await api.post(QUERY, user="mallory")
    assert_refused(response, 403, "FORBIDDEN", "no profile")


async def test_valid_hs256(api: Api) -> None:
    assert await api.data(QUERY) == {"dashboardSummary": {"trackedWallets": 3}}


async def test_issuer_required_when_configured(strict_api: Api) -> None:
    api = strict_api
    good = make_token("alice", issuer=ISSUER)
    assert (await api.post(QUERY, token=good)).status_code == 200
    wrong = make_token("alice", issuer="https://evil.test/")
    assert_refused(await api.post(QUERY, token=wrong), 401, "UNAUTHENTICATED", "issuer")
    assert_refused(await api.post(QUERY, token=make_token("alice")), 401, "UNAUTHENTICATED", "iss")


async def test_rs256_and_es256_from_jwks(strict_api: Api) -> None:
    api = strict_api
    for token in (signed(RSA_KEY, "RS256", "rsa-1"), signed(EC_KEY, "ES256", "ec-1")):
        assert await api.data(QUERY, token=token) == {"dashboardSummary": {"trackedWallets": 3}}
    expired = signed(RSA_KEY, "RS256", "rsa-1", exp=int(time.time()) - 3600)
    assert_refused(await api.post(QUERY, token=expired), 401, "UNAUTHENTICATED", "expired")
    wrong_aud = signed(EC_KEY, "ES256", "ec-1", aud="other")
    assert_refused(await api.post(QUERY, token=wrong_aud), 401, "UNAUTHENTICATED", "audience")
    forged = signed(RSA_KEY_2, "RS256", "rsa-1")  # right kid, another private key
    assert_refused(await api.post(QUERY, token=forged), 401, "UNAUTHENTICATED", "Signature")
    # The EC key announced as RS256: the key's own algorithm must match the token's.
    mismatched = crafted({"alg": "RS256", "kid": "ec-1"}, {"sub": "alice"}, b"x")
    assert_refused(await api.post(QUERY, token=mismatched), 401, "UNAUTHENTICATED")


async def test_hs_rs_confusion(strict_api: Api) -> None:
    """An HS256 token "signed" with the RSA public key (which anyone can read) is refused."""
    api = strict_api
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"sub": "alice", "aud": "authenticated", "iss": ISSUER, "exp": now + 600}
    for header in ({"alg": "HS256", "kid": "rsa-1"}, {"alg": "HS256"}):
        token = crafted(header, claims, public_pem)
        assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", "Signature")


async def test_jwks_only_server_refuses_hs256(
    db_url: str, seeded: Seeded, keys: tuple[KeyServer, str]
) -> None:
    config = settings(JWT_JWKS_URL=keys[1], JWT_SECRET="")
    async with running_api(db_url, seeded, config) as api:
        response = await api.post(QUERY, token=make_token("alice", secret=SECRET))
        assert_refused(response, 401, "UNAUTHENTICATED", "HS256")
        token = signed(RSA_KEY, "RS256", "rsa-1", iss=None)
        assert (await api.post(QUERY, token=token)).status_code == 200


async def test_key_rotation_and_caching(strict_api: Api, keys: tuple[KeyServer, str]) -> None:
    api, server = strict_api, keys[0]
    api.app.state.jwks.min_refresh = 0.0
    for _ in range(3):
        assert (await api.post(QUERY, token=signed(RSA_KEY, "RS256", "rsa-1"))).status_code == 200
    assert server.fetches == 1  # cached
    server.keys = [jwk(RSA_KEY_2, "rsa-2", "RS256")]  # rotated: rsa-1 withdrawn
    response = await api.post(QUERY, token=signed(RSA_KEY_2, "RS256", "rsa-2"))
    assert response.status_code == 200
    assert server.fetches == 2
    # A token not seen before (tokens already verified are remembered for a minute).
    old = signed(RSA_KEY, "RS256", "rsa-1", exp=int(time.time()) + 900)
    assert_refused(await api.post(QUERY, token=old), 401, "UNAUTHENTICATED", "rsa-1")


async def test_a_key_server_answering_no_object(
    db_url: str, seeded: Seeded, keys: tuple[KeyServer, str]
) -> None:
    """A key server answering JSON that is not an object (a list, a string) is a key server
    down: 503 until it has answered once, then its last good set is used (it was an
    AttributeError inside PyJWT: every RS256 request an internal error)."""
    server = keys[0]
    config = settings(JWT_JWKS_URL=keys[1], JWT_SECRET="")
    async with running_api(db_url, seeded, config) as api:
        api.app.state.jwks.min_refresh = 0.0
        token = signed(RSA_KEY, "RS256", "rsa-1", iss=None)
        for body in ([], "keys"):
            server.body = body
            response = await api.post(QUERY, token=token)
            assert_refused(response, 503, "SERVICE_UNAVAILABLE", "signing keys")
        server.body = None
        assert (await api.post(QUERY, token=token)).status_code == 200
        server.body = []  # a later bad answer: the last good set stays in use
        rotated = signed(RSA_KEY, "RS256", "rsa-unknown", iss=None)  # forces a refetch
        assert_refused(await api.post(QUERY, token=rotated), 401, "UNAUTHENTICATED", "no signing")
        assert server.fetches == 4


async def test_viewer_cannot_mutate(api: Api) -> None:
    response = await api.post(
        "mutation ($a: String!) { untrackWallet(address: $a) }", {"a": W3}, user="andy"
    )
    payload = response.json()
    assert response.status_code == 200
    assert payload["data"] is None
    assert payload["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "only an admin" in payload["errors"][0]["message"]
    data = await api.data("{ dashboardSummary { trackedWallets } }", user="andy")
    assert data == {"dashboardSummary": {"trackedWallets": 3}}


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """`main()` points logging at the captured stderr; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("keep_logging")
def test_token_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    assert main(["token", "alice", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == "alice"
    assert claims["iss"] == ISSUER
    assert 110 <= claims["exp"] - time.time() <= 121
    # 0 and below: a token already expired, for testing how a client handles one.
    for ttl in (0, -60):
        assert main(["token", "alice", "--ttl", str(ttl)]) == 0
        expired = capsys.readouterr().out.strip()
        with pytest.raises(jwt.ExpiredSignatureError):
            jwt.decode(expired, SECRET, algorithms=["HS256"], audience="authenticated")
        claims = jwt.decode(
            expired,
            SECRET,
            algorithms=["HS256"],
            audience="authenticated",
            options={"verify_exp": False},
        )
        assert abs(claims["exp"] - time.time() - ttl) <= 2
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.setenv("HL_ANALYTICS_DATA_DIR", str(tmp_path))
    assert main(["token", "alice"]) == 1
    assert "JWT_SECRET is not set" in capsys.readouterr().err


@pytest.mark.usefixtures("keep_logging")
def test_token_command_uses_the_demos_secret_where_the_demo_ran(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without JWT_SECRET, in a folder where `hl-analytics demo` ran, the token is
    signed with the demo's secret, so it works against the demo's API."""
    from hl_analytics.demo import _save_state

    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("JWT_ISSUER", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HL_ANALYTICS_DATA_DIR", raising=False)
    (tmp_path / ".hl-analytics").mkdir()
    _save_state(tmp_path / ".hl-analytics", {"jwt_secret": SECRET})
    assert main(["token", "demo-admin"]) == 0
    token = capsys.readouterr().out.strip()
    assert jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")["sub"] == (
        "demo-admin"
    )
    # JWT_SECRET, when set, wins (the demo uses it too).
    monkeypatch.setenv("JWT_SECRET", SECRET + "-other")
    assert main(["token", "demo-admin"]) == 0
    token = capsys.readouterr().out.strip()
    jwt.decode(token, SECRET + "-other", algorithms=["HS256"], audience="authenticated")


@pytest.mark.usefixtures("keep_logging")
def test_api_refuses_to_start_without_a_way_to_verify_tokens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["api", "--port", "1"]) == 1
    assert "set JWT_SECRET (HS256 tokens) or JWT_JWKS_URL" in capsys.readouterr().err
