"""`historyCompleteFrom`: the day from which every fill of a wallet is stored, or null."""

from __future__ import annotations

from datetime import date

import psycopg

from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W2

WALLET = "query ($a: String!) { wallet(address: $a) { historyCompleteFrom } }"
LIST = "{ trackedWallets { edges { node { address historyCompleteFrom } } } }"


async def test_each_wallet_says_from_which_day_its_history_is_complete(api: Api) -> None:
    # The seed's cursors were never marked complete: not known.
    assert await api.data(WALLET, {"a": W1}) == {"wallet": {"historyCompleteFrom": None}}
    with psycopg.connect(api.db_url) as conn:
        conn.execute(
            "UPDATE hl_ingest_cursor SET complete_from = %s"
            " WHERE wallet_id = (SELECT id FROM wallets WHERE address = %s)",
            (date(2025, 7, 27), W1),
        )
    await api.app.state.services.cache.invalidate(api.seeded.org_a)
    assert await api.data(WALLET, {"a": W1}) == {"wallet": {"historyCompleteFrom": "2025-07-27"}}
    edges = (await api.data(LIST))["trackedWallets"]["edges"]
    by_address = {e["node"]["address"]: e["node"]["historyCompleteFrom"] for e in edges}
    assert by_address[W1] == "2025-07-27" and by_address[W2] is None
