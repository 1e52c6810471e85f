"""An org that starts tracking a wallet another org tracks sees only syncs from then on."""

from __future__ import annotations

import psycopg

from storage import orgs
from tests.integration.graph.conftest import Api
from tests.integration.graph.seed import W1, W3

SUMMARY = "{ dashboardSummary { lastSyncedAt } }"
WALLET = "query ($a: String!) { wallet(address: $a) { lastSyncedAt } }"


async def test_last_synced_at_counts_from_when_the_org_began_tracking(api: Api) -> None:
    # Org B (bob) tracks W2 and W3; W1, synced 2026-01-02 for org A, is new to it.
    before = await api.data(SUMMARY, user="bob")
    assert before == {"dashboardSummary": {"lastSyncedAt": "2026-01-05T12:30:00+00:00"}}
    assert await api.data(WALLET, {"a": W1}) == {
        "wallet": {"lastSyncedAt": "2026-01-02T03:04:05+00:00"}
    }
    with psycopg.connect(api.db_url) as conn:
        orgs.track_wallets(conn, api.seeded.org_b, [W1])
        # Org B now also untracks and re-tracks W3: its earlier sync is no longer B's.
        orgs.untrack_wallet(conn, api.seeded.org_b, W3)
        orgs.track_wallets(conn, api.seeded.org_b, [W3])
    await api.app.state.services.cache.invalidate(api.seeded.org_b)
    assert await api.data(WALLET, {"a": W1}, user="bob") == {"wallet": {"lastSyncedAt": None}}
    assert await api.data(WALLET, {"a": W3}, user="bob") == {"wallet": {"lastSyncedAt": None}}
    after = await api.data(SUMMARY, user="bob")
    # Only W2's sync (tracked all along) still counts for B.
    assert after == {"dashboardSummary": {"lastSyncedAt": "2026-01-03T00:00:00+00:00"}}
    # Org A, which tracked W1 all along, still sees its sync.
    assert await api.data(WALLET, {"a": W1}) == {
        "wallet": {"lastSyncedAt": "2026-01-02T03:04:05+00:00"}
    }

    # The next sync of W1 counts for B too.
    with psycopg.connect(api.db_url) as conn:
        conn.execute(
            "UPDATE hl_ingest_cursor SET last_success_at = now() "
            "WHERE wallet_id = (SELECT id FROM wallets WHERE address = %s)",
            (W1,),
        )
    await api.app.state.services.cache.invalidate(api.seeded.org_b)
    synced = await api.data(WALLET, {"a": W1}, user="bob")
    assert synced["wallet"]["lastSyncedAt"] is not None
    assert (await api.data(SUMMARY, user="bob"))["dashboardSummary"]["lastSyncedAt"] == synced[
        "wallet"
    ]["lastSyncedAt"]
