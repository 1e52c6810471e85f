"""Hostile requests to `/graphql`: the catalogue the tests send one by one, and the
mix an attacker process repeats while a normal client measures its latency.

    python -m tests.reliability.abuse URL TOKEN SECONDS CONNECTIONS

attacks for SECONDS with CONNECTIONS concurrent connections, then prints what it
sent and what was answered, as JSON.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability.api_support import HEALTHY, SECRET, leaks, make_token


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


def chunks(total: int) -> Iterator[bytes]:
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
    _auth("8 kB of junk", (431,), "Bearer " + "A" * 8192),  # headers over 8 KiB
    _auth("5 kB of junk", (401,), "Bearer " + "A" * 5000),  # a token over 4 KiB
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
    _as("sub of 50 kB", (431,), "s" * 50_000),  # its token is over 8 KiB of headers
    _as("sub of 2 kB", (403,), "s" * 2_000),
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


def hostile_requests(token: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Requests an attacker repeats: each is refused (400/401), none may cost much.

    (name, headers, body), all POSTed to /graphql.
    """
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    frags = " ".join(
        f"fragment F{i} on DayMetrics {{ ...F{i + 1} ...F{i + 1} }}" for i in range(30)
    )
    frags += " fragment F30 on DayMetrics { day }"

    def doc(query: str) -> bytes:
        return json.dumps({"query": query}).encode()

    return [
        (
            "alias flood",
            auth,
            doc("{ " + " ".join(f"a{i}: globalMetrics {{ day }}" for i in range(1000)) + " }"),
        ),
        ("fragment bomb", auth, doc("{ globalMetrics { ...F0 } } " + frags)),
        ("deep nesting", auth, doc("{ dashboardSummary " + "{ latest " * 3000 + "}" * 3001)),
        ("batch", auth, json.dumps([{"query": HEALTHY}] * 200).encode()),
        (
            "deep JSON",
            auth,
            b'{"query": "{ day }", "variables": ' + b"[" * 20000 + b"]" * 20000 + b"}",
        ),
        ("not JSON", auth, b"{" + b"x" * 60_000),
        ("not UTF-8", auth, b'{"query": "\xff\xfe\xfd"}'),
        ("wrong type", {**auth, "Content-Type": "text/plain"}, HEALTHY.encode()),
        ("no token", {"Content-Type": "application/json"}, doc(HEALTHY)),
        (
            "forged token",
            {**auth, "Authorization": "Bearer " + make_token("alice", secret="x" * 40)},
            doc(HEALTHY),
        ),
    ]


async def _attack(url: str, token: str, seconds: float, concurrency: int) -> dict[str, Any]:
    requests = hostile_requests(token)
    statuses: dict[str, int] = {}
    leaked: list[str] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def attacker(client: httpx.AsyncClient, offset: int) -> None:
        i = offset
        while time.monotonic() < deadline:
            name, headers, body = requests[i % len(requests)]
            i += 1
            try:
                response = await client.post(url + "/graphql", content=body, headers=headers)
            except httpx.TransportError as exc:
                key = f"{name}: {type(exc).__name__}"
                statuses[key] = statuses.get(key, 0) + 1
                continue
            key = str(response.status_code)
            statuses[key] = statuses.get(key, 0) + 1
            if leaks(response.content, body):
                leaked.append(name)

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(attacker(client, n) for n in range(concurrency)))
    return {"requests": sum(statuses.values()), "statuses": statuses, "leaked": leaked}


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m tests.reliability.abuse URL TOKEN SECONDS CONCURRENCY`: attack,
    then print what was sent and answered, as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    url, token, seconds, concurrency = args[0], args[1], float(args[2]), int(args[3])
    print(json.dumps(asyncio.run(_attack(url, token, seconds, concurrency))))


if __name__ == "__main__":
    main()
