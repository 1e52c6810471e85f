"""HL_ANALYTICS_MAX_WALLETS_PER_ORG: no org tracks more, through GraphQL or the CLI,
and the refusal names the setting and changes nothing."""

from __future__ import annotations

from storage import orgs
from storage.db import connection
from tests.cli import run_cli
from tests.factories import address
from tests.integration.graph.conftest import running_api, settings
from tests.integration.graph.seed import W1, Seeded

TRACK = "mutation ($a: [String!]!) { trackWallets(addresses: $a) { tracked added } }"


def tracked(db_url: str, seeded: Seeded) -> set[str]:
    with connection(db_url) as conn:
        return {w.address for w in orgs.tracked_wallets(conn, seeded.org_a)}


async def test_track_wallets_stops_at_the_cap(db_url: str, seeded: Seeded) -> None:
    before = tracked(db_url, seeded)  # W1, W2, W4
    config = settings(HL_ANALYTICS_MAX_WALLETS_PER_ORG="4")
    async with running_api(db_url, seeded, config) as api:
        refused = await api.post(TRACK, {"a": [address(50), address(51), W1]})
        [error] = refused.json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "HL_ANALYTICS_MAX_WALLETS_PER_ORG=4" in error["message"]
        assert "2 more" in error["message"]
        assert tracked(db_url, seeded) == before
        # Up to the cap, and those already tracked never count twice.
        allowed = await api.data(TRACK, {"a": [address(50), W1]})
        assert allowed["trackWallets"]["added"] == [address(50)]
        again = await api.data(TRACK, {"a": [W1, address(50)]})
        assert again["trackWallets"]["added"] == []
    assert len(tracked(db_url, seeded)) == 4


def test_the_cli_stops_at_the_cap(db_url: str, seeded: Seeded) -> None:
    env = {"DATABASE_URL": db_url, "HL_ANALYTICS_MAX_WALLETS_PER_ORG": "3"}
    result = run_cli("wallets", "track", "--org", str(seeded.org_a), address(60), env=env)
    assert result.code != 0
    assert "Traceback" not in result.err
    assert "HL_ANALYTICS_MAX_WALLETS_PER_ORG=3" in result.err
    assert address(60) not in tracked(db_url, seeded)
