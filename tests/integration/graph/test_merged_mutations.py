"""Identical mutations are never merged: only queries share a computation or a cached answer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from jobs import tracking
from tests.factories import address
from tests.integration.graph.conftest import Api

TRACK = "mutation ($a: [String!]!) { trackWallets(addresses: $a) { tracked added } }"
W7 = address(7)


async def test_an_admin_and_a_viewer_sending_the_same_mutation_are_answered_apart(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real = tracking.track_wallets

    def held_track(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "track_wallets", held_track)
    admin = asyncio.create_task(api.post(TRACK, {"a": [W7]}, user="alice"))
    assert await asyncio.to_thread(entered.wait, 30), "the admin's mutation did not start"
    # The admin's mutation is running (held) when the viewer sends the same body.
    viewer = asyncio.create_task(api.post(TRACK, {"a": [W7]}, user="andy"))
    try:
        # Merged, the viewer would wait for the admin's answer: the cap only bounds a failure.
        await asyncio.wait({viewer}, timeout=20)
    finally:
        release.set()
    viewed, admin_answer = await viewer, await admin
    payload = viewed.json()
    assert payload["data"] is None, payload
    assert payload["errors"][0]["extensions"]["code"] == "FORBIDDEN", payload
    assert viewed.headers["x-cache"] == "miss"
    assert admin_answer.json() == {"data": {"trackWallets": {"tracked": [W7], "added": [W7]}}}


async def test_a_repeated_mutation_runs_again(api: Api) -> None:
    first = await api.data(TRACK, {"a": [W7]})
    again = await api.post(TRACK, {"a": [W7]})
    assert first == {"trackWallets": {"tracked": [W7], "added": [W7]}}
    assert again.headers["x-cache"] == "miss"
    assert again.json() == {"data": {"trackWallets": {"tracked": [W7], "added": []}}}
