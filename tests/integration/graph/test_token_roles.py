"""Token roles (JWT_ROLES), anonymous sign-ins, registered claims of the wrong type,
and oversized tokens and headers."""

from __future__ import annotations

import asyncio
import time

import jwt

from graph.auth import issue_token
from tests.integration.graph.conftest import SECRET, Api, make_token, running_api, settings
from tests.integration.graph.seed import Seeded
from tests.integration.graph.test_auth import assert_refused

QUERY = "{ dashboardSummary { trackedWallets } }"
TRACK = 'mutation { trackWallets(addresses: ["0x' + "ab" * 20 + '"]) { added } }'


async def test_only_listed_roles_are_accepted(api: Api) -> None:
    for role in ("anon", "service_role", "admin", ""):
        token = make_token("alice", role=role)
        assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", "role")
        assert_refused(await api.post(TRACK, token=token), 401, "UNAUTHENTICATED", "role")
    for wrong_type in (["authenticated"], 1, {"r": "authenticated"}):
        token = jwt.encode(
            {
                "sub": "alice",
                "aud": "authenticated",
                "exp": int(time.time()) + 60,
                "role": wrong_type,
            },
            SECRET,
            algorithm="HS256",
        )
        assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", "role")
    assert (await api.post(QUERY, token=make_token("alice"))).status_code == 200


async def test_a_token_without_role_is_refused(api: Api) -> None:
    token = make_token("alice", role=None)
    assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", "no `role`")


async def test_an_anonymous_sign_in_is_refused(api: Api) -> None:
    for flag in (True, "true", 1):
        token = make_token("alice", is_anonymous=flag)
        assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", "anonymous")
    assert (await api.post(QUERY, token=make_token("alice", is_anonymous=False))).status_code == 200


async def test_jwt_roles_setting(db_url: str, seeded: Seeded) -> None:
    config = settings(JWT_ROLES="staff, authenticated")
    async with running_api(db_url, seeded, config) as api:
        assert (await api.post(QUERY, token=make_token("alice", role="staff"))).status_code == 200
        refused = await api.post(QUERY, token=make_token("alice", role="anon"))
        assert_refused(refused, 401, "UNAUTHENTICATED", "role")
        # `hl-analytics token` signs the first role listed.
        issued = issue_token(config, "alice", 60)
        assert jwt.decode(issued, options={"verify_signature": False})["role"] == "staff"
        assert (await api.post(QUERY, token=issued)).status_code == 200


async def test_registered_claims_must_be_integers(api: Api) -> None:
    now = int(time.time())
    for name, value in (("exp", str(now + 600)), ("exp", now + 600.5), ("exp", True)):
        token = make_token("alice", **{name: value})
        # Refused the first time and every time after (nothing was remembered).
        for _ in range(2):
            assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", name)
    for name, value in (("nbf", str(now - 5)), ("iat", str(now)), ("iat", float(now))):
        token = make_token("alice", **{name: value})
        for _ in range(2):
            assert_refused(await api.post(QUERY, token=token), 401, "UNAUTHENTICATED", name)


async def test_a_token_over_4_kib_is_refused(api: Api) -> None:
    padded = make_token("alice", padding="x" * 4200)
    assert 4096 < len(padded) < 7000
    assert_refused(await api.post(QUERY, token=padded), 401, "UNAUTHENTICATED", "4096 bytes")
    small = make_token("alice", padding="x" * 1000)
    assert (await api.post(QUERY, token=small)).status_code == 200


async def test_headers_over_8_kib_get_431_before_any_work(api: Api) -> None:
    headers = {"Authorization": "Bearer " + "a" * 9000, "Content-Type": "application/json"}
    response = await api.client.post(api.url + "/graphql", content=b"{}", headers=headers)
    assert response.status_code == 431
    assert "8192 bytes" in response.json()["errors"][0]["message"]
    many = {f"x-h{i}": "v" * 100 for i in range(100)}
    assert (await api.client.get(api.url + "/healthz", headers=many)).status_code == 431

    # Huge ones are refused quickly, and other requests are not held up meanwhile.
    async def huge() -> int:
        async with api.client.stream(
            "POST",
            api.url + "/graphql",
            content=b"{}",
            headers={"Authorization": "Bearer " + "a" * (32 * 1024 * 1024)},
        ) as streamed:
            return streamed.status_code

    started = time.perf_counter()
    attack = asyncio.gather(huge(), huge())
    slowest = 0.0
    while not attack.done():  # a normal client meanwhile
        sent = time.perf_counter()
        assert (await api.data(QUERY)) == {"dashboardSummary": {"trackedWallets": 3}}
        slowest = max(slowest, time.perf_counter() - sent)
    assert await attack == [431, 431]
    elapsed = time.perf_counter() - started
    print(
        f"reliability: two 32 MB Authorization headers refused with 431 in {elapsed:.2f} s; "
        f"slowest normal request meanwhile {slowest * 1000:.0f} ms"
    )
    assert (await api.data(QUERY)) == {"dashboardSummary": {"trackedWallets": 3}}
