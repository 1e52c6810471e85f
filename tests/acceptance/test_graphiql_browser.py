"""GraphiQL in a real browser: served locally, token in the headers pane, queries run.

Drives Debian's Chromium (`apt-get install chromium`) through Playwright; skips
with the reason where Chromium is not installed. Every request the page makes
is recorded: none may leave 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import httpx
import psycopg
import pytest

from graph import graphiql
from hlsim.server import SimServer
from storage import orgs
from tests.cli import HL_ANALYTICS
from tests.integration.graph.conftest import make_token
from tests.integration.graph.seed import seed
from tests.integration.pipeline.support import pipeline, sync, worker
from tests.simulator import simulator, start_simulator
from tests.waiting import wait_until

__all__ = ["simulator", "start_simulator"]  # fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
QUERIES = {
    "dashboardSummary": "{ dashboardSummary { day trackedWallets latest { totalVolumeUsd dau } } }",
    "globalMetrics": "{ globalMetrics(range: D7) { day totalVolumeUsd tradeCount } }",
    "topWallets": "{ topWallets(range: D30, limit: 5) { rank address totalVolumeUsd } }",
}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def api_url(db_url: str) -> Iterator[str]:
    seed(db_url)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "JWT_SECRET": "browser-test-secret-of-at-least-32-bytes",
        "GRAPHIQL": "1",
    }
    proc = subprocess.Popen(
        [HL_ANALYTICS, "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def running(api_url: str) -> float:
    """The API's running subscriptions, from its Prometheus metrics."""
    text = httpx.get(f"{api_url}/metrics", timeout=5).text
    found = re.search(r"^hla_ws_subscriptions (\S+)$", text, flags=re.M)
    return float(found.group(1)) if found else 0.0


def test_local_assets_match_the_pages_integrity_hashes() -> None:
    """The page keeps its SRI hashes; the locally installed files must satisfy them."""
    folder = graphiql.assets_dir()
    if folder is None:
        pytest.skip("GraphiQL's assets are not installed (no npm when `make` ran)")
    page = graphiql.local_page()
    pairs = re.findall(
        r'(?:src|href)="/graphiql-assets/([^"]+)"\s+integrity="sha384-([^"]+)"', page
    )
    assert len(pairs) == len(graphiql.npm_packages()) + 2  # two packages bring a stylesheet too
    for path, expected in pairs:
        digest = base64.b64encode(hashlib.sha384((folder / path).read_bytes()).digest()).decode()
        assert digest == expected, path


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_graphiql_runs_the_three_queries(api_url: str, tmp_path: Path) -> None:
    if graphiql.assets_dir() is None:
        pytest.skip("GraphiQL's assets are not installed (no npm when `make` ran)")
    from playwright.sync_api import sync_playwright

    token = make_token("alice", secret="browser-test-secret-of-at-least-32-bytes")
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            for name, query in QUERIES.items():
                page.goto(f"{api_url}/graphql?{urlencode({'q': query}, quote_via=quote)}")
                page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
                # The token goes into the headers pane, as a person would paste it.
                page.get_by_text("Headers", exact=True).click()
                headers_editor = page.locator(".graphiql-editor-tool .graphiql-editor").last
                headers_editor.click()
                page.keyboard.press("Control+A")
                page.keyboard.insert_text(json.dumps({"Authorization": f"Bearer {token}"}))
                page.click(".graphiql-execute-button")
                result = page.locator(".result-window")
                try:
                    result.get_by_text(f'"{name}"').wait_for(timeout=20_000)
                finally:
                    page.screenshot(path=str(tmp_path / f"graphiql-{name}.png"))
                text = result.inner_text()
                assert '"errors"' not in text, text
        finally:
            browser.close()
    assert (tmp_path / "graphiql-dashboardSummary.png").stat().st_size > 10_000
    foreign = [
        u
        for u in requested
        if urlsplit(u).hostname not in ("127.0.0.1", None) and not u.startswith("data:")
    ]
    assert foreign == []


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_graphiql_subscription_gets_an_event_after_a_sync(
    api_url: str, db_url: str, simulator: SimServer, tmp_path: Path
) -> None:
    """The headers pane's token reaches the websocket as its connection parameters; a
    sync of the org's wallets (ingest, then rollups) shows up as an event in the page."""
    if graphiql.assets_dir() is None:
        pytest.skip("GraphiQL's assets are not installed (no npm when `make` ran)")
    from playwright.sync_api import sync_playwright

    with psycopg.connect(db_url, autocommit=True) as conn:
        org = orgs.create_org(conn, "Live").id
        orgs.add_user(conn, "lena", org, "viewer")
        with conn.transaction():
            orgs.track_wallets(conn, org, simulator.market.wallets)
    token = make_token("lena", secret="browser-test-secret-of-at-least-32-bytes")
    query = "subscription Live { metricsChanged { days changedAt } }"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(f"{api_url}/graphql?{urlencode({'q': query}, quote_via=quote)}")
            page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
            page.get_by_text("Headers", exact=True).click()
            headers_editor = page.locator(".graphiql-editor-tool .graphiql-editor").last
            headers_editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.insert_text(json.dumps({"Authorization": f"Bearer {token}"}))
            page.click(".graphiql-execute-button")
            # Subscribed once the API holds the socket's feed: the sync comes after.
            wait_until(lambda: running(api_url) >= 1, what="the page's subscription")
            with (
                psycopg.connect(db_url, autocommit=True) as auto,
                pipeline(db_url, simulator) as p,
                worker(p),
            ):
                sync(p, auto, org)
            result = page.locator(".result-window")
            try:
                result.get_by_text('"metricsChanged"').wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(tmp_path / "graphiql-subscription.png"))
            text = result.inner_text()
            assert '"days"' in text and '"errors"' not in text, text
            assert sockets == [f"{api_url.replace('http://', 'ws://')}/graphql"]
        finally:
            browser.close()
