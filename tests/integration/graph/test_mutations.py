"""Admin mutations: track and untrack in one transaction with the queued follow-up."""

from __future__ import annotations

import psycopg
import pytest

from tests.factories import address
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W2, W3

W5 = address(5)
TRACK = "mutation ($a: [String!]!) { trackWallets(addresses: $a) { tracked added } }"
UNTRACK = "mutation ($a: String!) { untrackWallet(address: $a) }"
SUMMARY = "{ dashboardSummary { trackedWallets } }"


def count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


async def test_track_and_untrack(api: Api) -> None:
    assert await api.data(SUMMARY) == {"dashboardSummary": {"trackedWallets": 3}}  # cached now
    data = await api.data(TRACK, {"a": [W3.upper().replace("0X", "0x"), W5]})
    assert data == {"trackWallets": {"tracked": [W3, W5], "added": [W3, W5]}}
    assert await api.data(SUMMARY) == {"dashboardSummary": {"trackedWallets": 5}}
    again = await api.data(TRACK, {"a": [W5]})
    assert again == {"trackWallets": {"tracked": [W5], "added": []}}
    assert await api.data(UNTRACK, {"a": W2}) == {"untrackWallet": True}
    assert await api.data(UNTRACK, {"a": W2}) == {"untrackWallet": False}
    assert await api.data(SUMMARY) == {"dashboardSummary": {"trackedWallets": 4}}
    # Org B still tracks the wallet A dropped.
    assert await api.data(SUMMARY, user="bob") == {"dashboardSummary": {"trackedWallets": 2}}
    wallet = "query ($a: String!) { wallet(address: $a) { address } }"
    assert await api.data(wallet, {"a": W2}, user="bob") == {"wallet": {"address": W2}}
    assert await api.data(wallet, {"a": W2}) == {"wallet": None}


@pytest.mark.parametrize(
    ("addresses", "words"),
    [([W5, "0x123"], "0x followed by 40 hexadecimal digits"), ([], "1 to 100 addresses")],
)
async def test_bad_input_writes_nothing(api: Api, addresses: list[str], words: str) -> None:
    before = count(api.db_url, "SELECT count(*) FROM org_wallets")
    response = await api.post(TRACK, {"a": addresses})
    payload = response.json()
    assert payload["data"] is None
    assert payload["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert words in payload["errors"][0]["message"]
    assert count(api.db_url, "SELECT count(*) FROM org_wallets") == before
    assert count(api.db_url, f"SELECT count(*) FROM wallets WHERE address = '{W5}'") == 0


async def test_viewer_gets_a_permission_error_and_nothing_changes(api: Api) -> None:
    for query, variables in ((TRACK, {"a": [W5]}), (UNTRACK, {"a": W2})):
        payload = (await api.post(query, variables, user="andy")).json()
        assert payload["data"] is None
        assert payload["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert count(api.db_url, "SELECT count(*) FROM org_wallets") == 5
    assert count(api.db_url, "SELECT count(*) FROM jobs") == 0


async def test_tracking_queues_ingest_and_recomputation(api: Api) -> None:
    await api.data(TRACK, {"a": [W3]})  # W3 traded on two days
    with psycopg.connect(api.db_url) as conn:
        rows = conn.execute("SELECT actor, message FROM jobs ORDER BY id").fetchall()
    actors = [actor for actor, _ in rows]
    assert any("ingest" in actor for actor in actors), actors
    assert any(W3 in str(message) for _, message in rows)
    assert sum("global" in actor for actor in actors) == 2, actors
