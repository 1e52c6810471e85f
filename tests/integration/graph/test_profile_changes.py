"""A deleted, moved or demoted user loses the old access at once, on every instance."""

from __future__ import annotations

import psycopg
import pytest

import graph.auth
from tests.factories import address
from tests.integration.graph.conftest import Api, running_api
from tests.integration.graph.seed import Seeded
from tests.integration.graph.test_cache import eventually

SUMMARY = "{ dashboardSummary { trackedWallets } }"
UNTRACK = "mutation ($a: String!) { untrackWallet(address: $a) }"
NOBODY = address(99)


async def is_admin(api: Api, user: str) -> bool:
    payload = (await api.post(UNTRACK, {"a": NOBODY}, user=user)).json()
    return payload.get("data") == {"untrackWallet": False}


async def test_profile_changes_apply_at_once_on_every_instance(
    db_url: str, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Profiles would be remembered for an hour: only the notifications can help.
    monkeypatch.setattr(graph.auth, "PROFILE_TTL_S", 3600.0)
    async with running_api(db_url, seeded) as one, running_api(db_url, seeded) as two:
        instances = (one, two)
        for api in instances:
            await api.app.state.profile_listener.listening.wait()
            assert await is_admin(api, "alice")
            assert await api.data(SUMMARY, user="andy") == {
                "dashboardSummary": {"trackedWallets": 3}
            }
            assert await api.data(SUMMARY, user="bob") == {
                "dashboardSummary": {"trackedWallets": 2}
            }

        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE user_profiles SET role = 'viewer' WHERE user_id = 'alice'")
            conn.execute(
                "UPDATE user_profiles SET org_id = %s WHERE user_id = 'andy'", (seeded.org_b,)
            )
            conn.execute("DELETE FROM user_profiles WHERE user_id = 'bob'")

        for api in instances:

            async def demoted(api: Api = api) -> bool:
                return not await is_admin(api, "alice")

            async def moved(api: Api = api) -> bool:
                data = (await api.post(SUMMARY, user="andy")).json().get("data")
                return bool(data == {"dashboardSummary": {"trackedWallets": 2}})

            async def deleted(api: Api = api) -> bool:
                return (await api.post(SUMMARY, user="bob")).status_code == 403

            await eventually(demoted, timeout_s=20)
            await eventually(moved, timeout_s=20)
            await eventually(deleted, timeout_s=20)


async def test_profiles_are_forgotten_when_the_link_comes_back(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes made while the link was down may have been missed: all are forgotten."""
    monkeypatch.setattr(graph.auth, "PROFILE_TTL_S", 3600.0)
    listener = api.app.state.profile_listener
    await listener.listening.wait()
    assert await is_admin(api, "alice")
    with psycopg.connect(api.db_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
            "datname = current_database() AND application_name = 'hl-analytics-api-profiles'"
        )
        # While nobody listens: a change nobody is told about (no trigger fires).
        conn.execute("ALTER TABLE user_profiles DISABLE TRIGGER user_profiles_notify")
        conn.execute("UPDATE user_profiles SET role = 'viewer' WHERE user_id = 'alice'")
        conn.execute("ALTER TABLE user_profiles ENABLE TRIGGER user_profiles_notify")

    async def demoted() -> bool:
        return listener.listening.is_set() and not await is_admin(api, "alice")

    await eventually(demoted, timeout_s=20)
