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
import pytest

from graph import graphiql
from tests.cli import HL_ANALYTICS
from tests.integration.graph.conftest import make_token
from tests.integration.graph.seed import seed

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
