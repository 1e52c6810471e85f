"""The README's newcomer path, from the link the demo prints and nothing else.

`hl-analytics demo` (what `make demo` runs) is started as a user would; the test
takes the GraphiQL link from its output, opens it in headless Chromium, and
checks that GraphiQL is signed in from the first request: the schema's docs
open, autocompletion offers the schema's fields, and a query returns numbers.
No log file may hold the token that the link carries.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from graph import graphiql
from hl_analytics.demo import EXAMPLE_QUERY
from tests.acceptance.test_demo import STARTUP_LIMIT_S, _next_line, _pump
from tests.acceptance.test_demo_lifeline import demo_env, free_port
from tests.acceptance.test_graphiql_browser import CHROMIUM
from tests.cli import HL_ANALYTICS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    ),
]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_the_printed_link_opens_graphiql_signed_in(tmp_path: Path) -> None:
    if graphiql.assets_dir() is None:
        pytest.skip("GraphiQL's assets are not installed (no npm when `make` ran)")
    from playwright.sync_api import sync_playwright

    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [HL_ANALYTICS, "demo", "--port", str(free_port())],
        env=demo_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = _pump(proc)
        _next_line(lines, r"^GraphiQL, signed in", STARTUP_LIMIT_S)
        link = _next_line(lines, r"^\s+http://\S+/graphql\?headers=", 10).strip()
        token = _next_line(lines, r"Authorization: Bearer", 10)
        token = re.findall(r"Bearer (\S+?)'", token)[0]
        _next_line(lines, r"Ctrl-C stops everything", 30)

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                statuses: list[int] = []
                page.on(
                    "response",
                    lambda r: statuses.append(r.status) if "/graphql" in r.url else None,
                )
                page.goto(link)
                page.wait_for_selector(".graphiql-execute-button", timeout=30_000)

                # Docs: the schema was fetched with the header, so the explorer has it.
                page.locator('[aria-label="Show Documentation Explorer"]').click()
                docs = page.locator(".graphiql-doc-explorer")
                docs.get_by_text("Query", exact=True).first.click()
                docs.get_by_text("dashboardSummary").first.wait_for(timeout=20_000)
                page.screenshot(path=str(tmp_path / "docs.png"))

                # Autocompletion: typing a field's start offers the schema's field.
                editor = page.locator(".graphiql-query-editor .CodeMirror").first
                editor.click()
                page.keyboard.press("Control+A")
                page.keyboard.press("Delete")
                page.keyboard.type("{ dashb")
                hints = page.locator(".CodeMirror-hints")
                hints.get_by_text("dashboardSummary").first.wait_for(timeout=20_000)
                page.screenshot(path=str(tmp_path / "autocomplete.png"))
                page.keyboard.press("Escape")

                # A query, run from the page: real numbers, no error.
                page.keyboard.press("Control+A")
                page.keyboard.press("Delete")
                page.keyboard.insert_text(EXAMPLE_QUERY)  # the query the README runs
                page.click(".graphiql-execute-button")
                result = page.locator(".result-window")
                result.get_by_text('"trackedWallets"').wait_for(timeout=20_000)
                page.screenshot(path=str(tmp_path / "result.png"))
                text = result.inner_text()
                assert '"errors"' not in text, text
                assert re.search(r'"trackedWallets":\s*30', text), text
                assert re.search(r'"totalVolumeUsd":\s*"[1-9]', text), text
            finally:
                browser.close()
        assert 401 not in statuses, statuses
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
    for log in (data_dir / "logs").glob("*.log"):
        assert token not in log.read_text(), f"{log.name} holds the token"
