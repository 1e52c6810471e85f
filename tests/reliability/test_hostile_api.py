"""Scenario 4: hostile input to `/graphql` is refused without harm.

Guarantee: whatever a client sends, the API answers with a 4xx (or a GraphQL error
in a 200) and never a 5xx; no answer carries a stack trace, SQL, a driver's name
or a source path; the server logs no unexpected error; and a well-behaved client
keeps its latency while an attacker hammers the server.

The server is a real `hl-analytics api` process on 127.0.0.1 (GRAPHIQL=0, as in
production) over a seeded database; the fuzzer is schemathesis in its GraphQL
mode, fed the contract file `graph/schema.graphql`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.dbs import TestDatabases
from tests.integration.graph.seed import seed
from tests.reliability.api_support import (
    HEALTHY,
    SECRET,
    ApiProcess,
    api_process,
    bearer,
    leaks,
    make_token,
    percentile,
    record,
)

SCHEMA_FILE = Path(__file__).parents[2] / "graph" / "schema.graphql"
EXAMPLES_PER_OPERATION = 100
REFUSE_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def api(dbs: TestDatabases) -> Iterator[ApiProcess]:
    url = dbs.fresh()
    seed(url)
    try:
        with api_process(url) as process:
            yield process
    finally:
        dbs.drop(url)


def assert_harmless(response: httpx.Response | requests.Response, sent: str | bytes) -> None:
    body = response.content
    assert response.status_code < 500, body[:500]
    assert not leaks(body, sent), (leaks(body, sent), body[:500])
    assert b"INTERNAL_SERVER_ERROR" not in body, body[:500]


def assert_still_serving(api: ApiProcess, errors_before: int = 0) -> None:
    """A normal request is answered, and nothing unexpected was logged since `errors_before`."""
    response = httpx.post(api.graphql, json={"query": HEALTHY}, headers=bearer("alice"))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["dashboardSummary"]["trackedWallets"] == 3
    assert api.unexpected_errors()[errors_before:] == []


# -- schemathesis ------------------------------------------------------------------


def test_fuzzed_documents_never_fail_the_server(api: ApiProcess) -> None:
    """Guarantee: documents generated from the schema, valid (positive) and invalid
    (negative), for every query and mutation, get an answer that is not a 5xx, is a
    well-formed GraphQL response conforming to the schema, and leaks nothing."""
    schema = schemathesis.graphql.from_path(SCHEMA_FILE)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert {op.label for op in operations} >= {
        "Query.dashboardSummary",
        "Query.globalMetrics",
        "Query.topWallets",
        "Query.wallet",
        "Mutation.trackWallets",
    }
    session = requests.Session()
    headers = bearer("alice")  # an admin: mutations run too
    statuses: dict[int, int] = {}
    started = time.monotonic()

    def fuzz(strategy: SearchStrategy[Any]) -> None:
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def one(case: Any) -> None:
            response = case.call(base_url=api.graphql, headers=headers, session=session)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            # `topWallets(limit:)` outside 1..100 is refused by design; the SDL cannot say so.
            case.validate_response(response, excluded_checks=[positive_data_acceptance])
            assert_harmless(response, json.dumps(case.body))

        one()

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for operation in operations:
            fuzz(operation.as_strategy(generation_mode=mode))
    cases = sum(statuses.values())
    record(
        "fuzz: schemathesis cases",
        f"{cases} in {time.monotonic() - started:.1f} s, statuses {dict(sorted(statuses.items()))}",
    )
    assert cases >= len(operations) * 2 * 10
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0
    assert_still_serving(api)


# -- hand-written abuse ------------------------------------------------------------


def _raw_token(header: dict[str, Any], payload: bytes, secret: str = SECRET) -> str:
    """A token whose payload bytes are exactly `payload`, signed with HS256."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = b64(json.dumps(header).encode()) + b"." + b64(payload)
    signature = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + b64(signature)).decode()


def _fragment_bomb(levels: int) -> str:
    frags = " ".join(
        f"fragment F{i} on DayMetrics {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return "{ globalMetrics { ...F0 } } " + frags + f" fragment F{levels} on DayMetrics {{ day }}"


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * 65536
        sent += 65536


NOW = int(time.time())
FUTURE = NOW + 3600
JSON_CT = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Abuse:
    """One hostile request: what is sent and the statuses it may get."""

    name: str
    expect: tuple[int, ...]
    method: str = "POST"
    body: bytes | None = None
    query: str | None = None  # sent as {"query": ...} when body is None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_CT))
    token: str | None = "alice"  # a user to sign for, or None for no Authorization
    authorization: str | None = None  # a raw Authorization header instead of a token
    params: dict[str, str] | None = None
    url_suffix: str = ""  # raw, already percent-encoded, query string

    def content(self) -> bytes | None:
        if self.body is not None:
            return self.body
        if self.query is not None:
            return json.dumps({"query": self.query}).encode()
        return None


def _doc(query: str, **extra: object) -> bytes:
    return json.dumps({"query": query, **extra}).encode()


def _q(name: str, expect: tuple[int, ...], query: str) -> Abuse:
    return Abuse(name, expect, query=query)


def _raw(name: str, expect: tuple[int, ...], body: bytes, **kw: Any) -> Abuse:
    return Abuse(name, expect, body=body, **kw)


def _auth(name: str, expect: tuple[int, ...], authorization: str) -> Abuse:
    return Abuse(name, expect, query=HEALTHY, token=None, authorization=authorization)


def _signed(name: str, header: dict[str, Any], payload: bytes) -> Abuse:
    return _auth(name, (401,), "Bearer " + _raw_token(header, payload))


def _as(name: str, expect: tuple[int, ...], sub: str) -> Abuse:
    return Abuse(name, expect, query=HEALTHY, token=sub)


def _ct(name: str, content_type: str, body: bytes) -> Abuse:
    return Abuse(name, (400,), body=body, headers={"Content-Type": content_type})


WALLET = "query ($a: String!) { wallet(address: $a) { address } }"
LIMIT = "query ($n: Int!) { topWallets(limit: $n) { rank } }"
CLAIMS = {"sub": "alice", "aud": "authenticated", "exp": FUTURE}
DEEP_JSON = b"[" * 30000 + b"]" * 30000


def _aliases(n: int, field: str) -> str:
    return "{ " + " ".join(f"a{i}: {field} {{ day }}" for i in range(n)) + " }"


ABUSES = [
    # Deep nesting: of selections, of list literals, of JSON.
    _q("deep selections", (400,), '{ wallet(address: "0x") { days ' + "{ day " * 20 + "}" * 21),
    _q("5000 nested braces", (400,), "{ dashboardSummary " + "{ latest " * 5000 + "}" * 5001),
    _q("deep list literal", (400,), "mutation { trackWallets(addresses: " + "[" * 900 + "]" * 900),
    _raw("deep JSON variables", (400,), b'{"query": "{ day }", "variables": ' + DEEP_JSON + b"}"),
    _raw("deep JSON body", (400,), DEEP_JSON),
    Abuse(
        "deep JSON in GET variables",
        (400,),
        method="GET",
        params={"query": HEALTHY, "variables": "[" * 5000 + "]" * 5000},
    ),
    _q(
        "fragment cycle",
        (400,),
        "{ dashboardSummary { ...A } } fragment A on DashboardSummary { ...B } "
        "fragment B on DashboardSummary { ...A }",
    ),
    _q("fragment bomb", (400,), _fragment_bomb(18)),
    _q("fragment bomb, 60 levels", (400,), _fragment_bomb(60)),
    # Alias floods.
    _q("31 aliases", (400,), _aliases(31, "dashboardSummary")),
    _q("1000 aliases", (400,), _aliases(1000, "globalMetrics")),
    _q("3000 repeated fields", (400,), "{ dashboardSummary { " + "day " * 3000 + "} }"),
    # Batching.
    _raw("batch of 2", (400,), json.dumps([{"query": HEALTHY}] * 2).encode()),
    _raw("batch of 1000", (400,), json.dumps([{"query": HEALTHY}] * 1000).encode()),
    # Huge variables.
    _raw("60 kB variable", (200,), _doc(WALLET, variables={"a": "x" * 60_000})),
    _raw("variables over the body limit", (400,), _doc(WALLET, variables={"a": "x" * 70_000})),
    _raw(
        "3000 unused variables", (200,), _doc(HEALTHY, variables={f"v{i}": i for i in range(3000)})
    ),
    _raw("integer of 400 digits", (400,), _doc(LIMIT, variables={"n": 10**400})),
    _raw("infinite float", (200, 400), _doc(LIMIT)[:-1] + b', "variables": {"n": 1e999}}'),
    _raw("NaN", (200, 400), _doc(LIMIT)[:-1] + b', "variables": {"n": NaN}}'),
    # Wrong content types.
    _ct("text/plain", "text/plain", HEALTHY.encode()),
    _ct("application/graphql", "application/graphql", HEALTHY.encode()),
    _ct("form-urlencoded", "application/x-www-form-urlencoded", b"query=%7B+x+%7D"),
    _ct(
        "multipart upload",
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}\r\n--b--\r\n',
    ),
    Abuse("no content type", (400,), body=_doc(HEALTHY), headers={}),
    _raw("XML", (400,), b"<?xml version='1.0'?><query/>"),
    # Encodings.
    _raw("invalid UTF-8", (400,), b'{"query": "{ dashboardSummary { day \xff\xfe } }"}'),
    _raw("Latin-1", (400,), b'{"query": "{ dashboardSummary { d\xe9y } }"}'),
    _raw("overlong UTF-8", (400,), b'{"query": "\xc0\xaf"}'),
    _raw("lone surrogate in the query", (400,), b'{"query": "{ dashboardSummary { \\ud800 } }"}'),
    _raw(
        "lone surrogate in a variable",
        (200,),
        _doc(WALLET)[:-1] + b', "variables": {"a": "\\ud800"}}',
    ),
    _raw(
        "lone surrogate in operationName",
        (400,),
        _doc("query A { dashboardSummary { day } }")[:-1] + b', "operationName": "\\udfff"}',
    ),
    _raw("NUL in the query", (400,), b'{"query": "{ dashboardSummary\\u0000 { day } }"}'),
    _raw("NUL in an argument", (200,), _doc('{ wallet(address: "0x\\u0000") { address } }')),
    Abuse("invalid UTF-8 in GET", (400,), method="GET", url_suffix="?query=%FF%FE%7B"),
    Abuse("encoded surrogate in GET", (400,), method="GET", url_suffix="?query=%ED%A0%80"),
    # Huge and broken bodies.
    _raw("2 MB declared", (400,), _doc(HEALTHY + " " * 2_000_000)),
    _raw("broken JSON", (400,), b'{"query": "{ dashboardSummary { day } }"'),
    _raw("empty body", (400,), b""),
    _raw("JSON null", (400,), b"null"),
    _raw("JSON string", (400,), b'"{ dashboardSummary { day } }"'),
    _raw("query not a string", (400,), b'{"query": {"$ne": null}}'),
    _raw("empty query", (400,), b'{"query": ""}'),
    _raw("variables a list", (400,), _doc(HEALTHY, variables=[1, 2])),
    _raw("variables broken JSON string", (400,), _doc(HEALTHY, variables="{not json")),
    _raw("operationName a number", (400,), _doc(HEALTHY, operationName=5)),
    _raw("unknown operationName", (400,), _doc(HEALTHY, operationName="' OR 1=1 --")),
    _q("syntax error", (400,), "{ dashboardSummary { day }"),
    _q("unknown field", (400,), "{ orgs { id name } }"),
    _q("org argument", (400,), '{ dashboardSummary(orgId: "0") { day } }'),
    _q("introspection with GRAPHIQL=0", (400,), "{ __schema { types { name } } }"),
    _q("subscription", (400, 405), "subscription { dashboardSummary { day } }"),
    _raw("SQL in an address", (200,), _doc(WALLET, variables={"a": "0x'; DROP TABLE wallets; --"})),
    # Wrong HTTP methods.
    Abuse("PUT", (405,), method="PUT", query=HEALTHY),
    Abuse("DELETE", (405,), method="DELETE"),
    Abuse("PATCH", (405,), method="PATCH", query=HEALTHY),
    Abuse("OPTIONS", (405,), method="OPTIONS"),
    Abuse("TRACE", (405,), method="TRACE"),
    Abuse("HEAD", (400, 405), method="HEAD"),
    Abuse("GET without a query", (400,), method="GET"),
    Abuse(
        "mutation over GET",
        (405,),
        method="GET",
        params={"query": 'mutation { untrackWallet(address: "0x") }'},
    ),
    # Broken and hostile tokens.
    Abuse("no token", (401,), query=HEALTHY, token=None),
    _auth("Basic auth", (401,), "Basic YWxpY2U6cGFzcw=="),
    _auth("Bearer without a token", (401,), "Bearer"),
    _auth("not a JWT", (401,), "Bearer a.b.c"),
    _auth("8 kB of junk", (401,), "Bearer " + "A" * 8192),
    _auth(
        "alg none",
        (401,),
        "Bearer "
        + _raw_token({"alg": "none"}, json.dumps(CLAIMS).encode()).rsplit(".", 1)[0]
        + ".",
    ),
    _auth("wrong secret", (401,), "Bearer " + make_token("alice", secret="not-it-" * 6)),
    _auth("expired", (401,), "Bearer " + make_token("alice", expires_in=-3600)),
    _auth("not yet valid", (401,), "Bearer " + make_token("alice", nbf=FUTURE)),
    _auth("wrong audience", (401,), "Bearer " + make_token("alice", aud="somebody-else")),
    _signed(
        "no exp", {"alg": "HS256"}, json.dumps({"sub": "alice", "aud": "authenticated"}).encode()
    ),
    _auth("sub a number", (401,), "Bearer " + make_token(5)),
    _auth("sub empty", (401,), "Bearer " + make_token("")),
    _signed("HS512", {"alg": "HS512"}, json.dumps(CLAIMS).encode()),
    _signed(
        "RS256 with the secret",
        {"alg": "RS256", "jku": "http://127.0.0.1:1/"},
        json.dumps(CLAIMS).encode(),
    ),
    _signed("payload not JSON", {"alg": "HS256"}, b"\xff\xfe"),
    _as("sub with SQL", (403,), "' OR '1'='1"),
    _as("sub of 50 kB", (403,), "s" * 50_000),
    _as("sub with NUL", (401, 403), "alice\x00"),
    _auth(
        "sub with a lone surrogate",
        (401, 403),
        "Bearer "
        + _raw_token(
            {"alg": "HS256"}, b'{"sub": "\\ud800", "aud": "authenticated", "exp": %d}' % FUTURE
        ),
    ),
]


@pytest.mark.parametrize("abuse", ABUSES, ids=[a.name for a in ABUSES])
def test_hand_written_abuse_is_refused(api: ApiProcess, abuse: Abuse) -> None:
    """Guarantee: each hostile request gets its 4xx (or a GraphQL error) quickly, with
    no trace of the internals, and the server keeps answering others."""
    headers = dict(abuse.headers)
    if abuse.authorization is not None:
        headers["Authorization"] = abuse.authorization
    elif abuse.token is not None:
        headers["Authorization"] = f"Bearer {make_token(abuse.token)}"
    content = abuse.content()
    errors_before = len(api.unexpected_errors())
    started = time.perf_counter()
    response = httpx.request(
        abuse.method,
        api.graphql + abuse.url_suffix,
        content=content,
        headers=headers,
        params=abuse.params,
        timeout=30,
    )
    elapsed = time.perf_counter() - started
    sent = (content or b"") + json.dumps(abuse.params or {}).encode() + abuse.url_suffix.encode()
    assert response.status_code in abuse.expect, (response.status_code, response.text[:300])
    assert_harmless(response, sent)
    if abuse.method != "HEAD" and response.status_code != 405:
        payload = response.json()
        assert "errors" in payload or "data" in payload, payload
        if response.status_code >= 400:
            assert payload["errors"] and all(e["message"] for e in payload["errors"]), payload
    assert elapsed < REFUSE_WITHIN_S, f"took {elapsed:.2f} s"
    assert_still_serving(api, errors_before)


def test_a_huge_chunked_body_is_cut_off(api: ApiProcess) -> None:
    """Guarantee: a body without Content-Length is refused once it passes the limit,
    and the server keeps answering."""
    headers = {**bearer("alice"), **JSON_CT}
    errors_before = len(api.unexpected_errors())
    try:
        response = httpx.post(api.graphql, content=_chunks(50_000_000), headers=headers, timeout=30)
    except httpx.TransportError:
        pass  # the server may close the connection while the client is still sending
    else:
        assert response.status_code == 400, response.text[:300]
        assert "larger than" in response.text
    assert_still_serving(api, errors_before)


# -- latency under attack ----------------------------------------------------------

WELL_BEHAVED = [
    "{ dashboardSummary { day trackedWallets latest { tradeCount totalVolumeUsd } } }",
    "{ globalMetrics(range: D7) { day dau totalVolumeUsd } }",
    "{ topWallets(range: D30, limit: 5) { rank address totalVolumeUsd } }",
]


def _well_behaved(api: ApiProcess, seconds: float, expected: list[Any]) -> list[float]:
    """Sequential requests of a normal client for `seconds`; each answer is checked."""
    latencies: list[float] = []
    headers = bearer("alice")
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=30) as client:
        i = 0
        while time.monotonic() < deadline:
            query = WELL_BEHAVED[i % len(WELL_BEHAVED)]
            started = time.perf_counter()
            response = client.post(api.graphql, json={"query": query}, headers=headers)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:300]
            assert response.json()["data"] == expected[i % len(WELL_BEHAVED)]
            i += 1
    return latencies


def test_well_behaved_latency_holds_under_attack(api: ApiProcess) -> None:
    """Guarantee: while 8 connections send hostile requests as fast as they can, a
    normal client's requests are all answered correctly, and their latency stays
    within generous bounds of its latency without the attack."""
    headers = bearer("alice")
    expected = [
        httpx.post(api.graphql, json={"query": q}, headers=headers).json()["data"]
        for q in WELL_BEHAVED
    ]
    baseline = _well_behaved(api, 3.0, expected)
    attacker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.api_support",
            api.url,
            make_token("alice"),
            "6",
            "8",
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        time.sleep(1.0)  # the attack is under way
        attacked = _well_behaved(api, 4.0, expected)
        out, _ = attacker.communicate(timeout=60)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    report = json.loads(out)
    base50, base99 = percentile(baseline, 50), percentile(baseline, 99)
    att50, att99 = percentile(attacked, 50), percentile(attacked, 99)
    record(
        "latency: well-behaved client, no attack",
        f"p50 {base50 * 1000:.1f} ms, p99 {base99 * 1000:.1f} ms ({len(baseline)} requests)",
    )
    record(
        "latency: well-behaved client, under attack",
        f"p50 {att50 * 1000:.1f} ms, p99 {att99 * 1000:.1f} ms ({len(attacked)} requests); "
        f"attack: {report['requests']} hostile requests, statuses {report['statuses']}",
    )
    assert report["requests"] > 100
    assert set(report["statuses"]) <= {"400", "401"}, report["statuses"]
    assert report["leaked"] == []
    assert att99 < 1.0, f"p99 under attack {att99:.3f} s"
    assert att50 < max(20 * base50, 0.1), f"p50 {base50:.4f} s → {att50:.4f} s under attack"
    assert api.unexpected_errors() == []
