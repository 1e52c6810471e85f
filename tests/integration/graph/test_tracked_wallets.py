"""trackedWallets (a Relay connection of the org's wallets and their sync state) and
labelWallet."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from graph import cursors
from storage import day_totals
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W2, W3, W4

LIST = """query ($first: Int, $after: String, $search: String) {
  trackedWallets(first: $first, after: $after, search: $search) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { address label trackedAt lastSyncedAt lastFillAt syncState
                          lastError unpricedFills } }
  }
}"""
LABEL = """mutation ($a: String!, $l: String) {
  labelWallet(address: $a, label: $l) { address label syncState }
}"""

# W1: failed after its last success; W2: truncated, with a last fill and unpriced
# fills; W4: never ingested. (Org A tracks W1, W2, W4; org B W2 and W3.)
STATES = """
UPDATE hl_ingest_cursor
SET last_error = 'HTTP 500 from /info', last_error_at = '2026-01-02 04:00:00+00'
WHERE wallet_id = (SELECT id FROM wallets WHERE address = %(w1)s);
UPDATE hl_ingest_cursor SET history_truncated = true, last_fill_ms = 1767225600123,
       last_error = 'an old error', last_error_at = '2026-01-01 00:00:00+00'
WHERE wallet_id = (SELECT id FROM wallets WHERE address = %(w2)s);
UPDATE wallet_day_metrics SET unpriced_fills = trade_count
WHERE wallet_id = (SELECT id FROM wallets WHERE address = %(w2)s);
"""


def set_states(api: Api) -> None:
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        for statement in STATES.strip().split(";\n"):
            if statement.strip():
                conn.execute(statement, {"w1": W1, "w2": W2})
        # The read models follow the changed wallet-days, as after a rollup.
        day_totals.refresh_read_models(conn, None, date(2000, 1, 1))


async def page(api: Api, user: str = "alice", **variables: Any) -> Any:
    return (await api.data(LIST, variables, user=user))["trackedWallets"]


async def pages(api: Api, first: int, user: str = "alice", **kw: Any) -> list[Any]:
    out, after = [], None
    while True:
        got = await page(api, user, first=first, after=after, **kw)
        out.append(got)
        if not got["pageInfo"]["hasNextPage"]:
            return out
        after = got["pageInfo"]["endCursor"]


async def test_the_list_and_its_states(api: Api) -> None:
    set_states(api)
    got = await page(api)
    assert got["totalCount"] == 3
    nodes = {e["node"]["address"]: e["node"] for e in got["edges"]}
    assert list(nodes) == sorted([W1, W2, W4])
    assert nodes[W1]["syncState"] == "FAILING"
    assert nodes[W1]["lastError"] == "HTTP 500 from /info"
    assert nodes[W1]["lastSyncedAt"] == "2026-01-02T03:04:05+00:00"
    assert nodes[W2]["syncState"] == "TRUNCATED"  # its error is older than its success
    assert nodes[W2]["lastFillAt"] == "2026-01-01T00:00:00.123000+00:00"
    assert nodes[W4] | {"trackedAt": None} == {
        "address": W4,
        "label": None,
        "trackedAt": None,
        "lastSyncedAt": None,
        "lastFillAt": None,
        "syncState": "PENDING",
        "lastError": None,
        "unpricedFills": 0,
    }
    assert nodes[W4]["trackedAt"] is not None
    # All-time: W2's seeded days in org A's data have 1 + 4 + 2... trades (seed rows).
    from tests.integration.graph.seed import WALLET_DAYS

    assert nodes[W2]["unpricedFills"] == sum(int(r[2]) for r in WALLET_DAYS if r[0] == W2)  # type: ignore[call-overload]
    # Org B sees W2 without org A's label, and its own wallets only.
    got_b = await page(api, "bob")
    assert [e["node"]["address"] for e in got_b["edges"]] == sorted([W2, W3])
    states = {e["node"]["address"]: e["node"]["syncState"] for e in got_b["edges"]}
    assert states == {W2: "TRUNCATED", W3: "OK"}


async def test_paging_to_the_end(api: Api) -> None:
    walked = await pages(api, first=1)
    assert [p["totalCount"] for p in walked] == [3, 3, 3]
    assert [e["node"]["address"] for p in walked for e in p["edges"]] == sorted([W1, W2, W4])
    assert [p["pageInfo"]["hasPreviousPage"] for p in walked] == [False, True, True]
    assert walked[0]["pageInfo"]["startCursor"] == walked[0]["edges"][0]["cursor"]
    # After the last one: an empty page that still counts.
    last = walked[-1]["pageInfo"]["endCursor"]
    empty = await page(api, first=5, after=last)
    assert empty == {
        "totalCount": 3,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": True,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }
    default = await page(api)  # first defaults to 50
    assert len(default["edges"]) == 3 and not default["pageInfo"]["hasNextPage"]


async def test_labels_and_search(api: Api) -> None:
    labelled = await api.data(LABEL, {"a": W2.upper().replace("0X", "0x"), "l": "Market maker ✓"})
    assert labelled["labelWallet"] == {"address": W2, "label": "Market maker ✓", "syncState": "OK"}
    await api.data(LABEL, {"a": W4, "l": "maker two"})
    found = await page(api, search="MAKER")
    assert [e["node"]["address"] for e in found["edges"]] == sorted([W2, W4])
    assert found["totalCount"] == 2
    assert (await page(api, search=W1[:12]))["totalCount"] == 3  # the seed's share a prefix
    assert (await page(api, search=W1.upper()))["totalCount"] == 1
    assert (await page(api, search="0x" + "f" * 10))["totalCount"] == 0
    # Labels are the org's own: org B tracks W2 too and sees no label.
    b = await page(api, "bob", search="maker")
    assert b["totalCount"] == 0
    nodes_b = {e["node"]["address"]: e["node"]["label"] for e in (await page(api, "bob"))["edges"]}
    assert nodes_b == {W2: None, W3: None}
    # null clears.
    cleared = await api.data(LABEL, {"a": W2, "l": None})
    assert cleared["labelWallet"]["label"] is None
    assert (await page(api, search="market"))["totalCount"] == 0


async def error(api: Api, query: str, variables: dict[str, Any], user: str = "alice") -> Any:
    response = await api.post(query, variables, user=user)
    payload = response.json()
    assert response.status_code == 200, payload
    (err,) = payload["errors"]
    return err


async def test_bad_input(api: Api) -> None:
    for first in (0, 201, -1):
        err = await error(api, LIST, {"first": first})
        assert err["extensions"]["code"] == "BAD_USER_INPUT"
        assert "first must be 1..200" in err["message"]
    # A cursor of another org (bob's), one this server never issued, one of another list.
    b_page = await page(api, "bob", first=1)
    forged = cursors.encode("fills", api.seeded.org_a, [W1])
    for after in (b_page["pageInfo"]["endCursor"], "bm90IGEgY3Vyc29y", "%%%", forged, "e30"):
        err = await error(api, LIST, {"after": after})
        assert err["extensions"]["code"] == "BAD_USER_INPUT", after
        assert "cursor" in err["message"]
    # PostgreSQL's text cannot hold NUL: refused as input, never a failed statement.
    for search, rule in (("ab\x00c", "NUL character"), ("x" * 101, "0 to 100 allowed")):
        err = await error(api, LIST, {"search": search})
        assert err["extensions"]["code"] == "BAD_USER_INPUT", err
        assert rule in err["message"]
    for label, rule in (
        ("line\nbreak", "control characters"),
        ("tab\there", "control characters"),
        ("x" * 65, "1 to 64 characters"),
        ("", "1 to 64 characters"),
    ):
        err = await error(api, LABEL, {"a": W1, "l": label})
        assert err["extensions"]["code"] == "BAD_USER_INPUT"
        assert rule in err["message"]
    assert (await api.data(LABEL, {"a": W1, "l": "x" * 64}))["labelWallet"]["label"] == "x" * 64
    # Another org's wallet, and a viewer.
    err = await error(api, LABEL, {"a": W3, "l": "theirs"})
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "does not track" in err["message"]
    err = await error(api, LABEL, {"a": W1, "l": "mine"}, user="andy")
    assert err["extensions"]["code"] == "FORBIDDEN"
    with psycopg.connect(api.db_url) as conn:
        labels = dict(
            conn.execute(
                "SELECT w.address, ow.label FROM org_wallets ow JOIN wallets w "
                "ON w.id = ow.wallet_id WHERE ow.label IS NOT NULL"
            ).fetchall()
        )
    assert labels == {W1: "x" * 64}
