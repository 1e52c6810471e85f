"""GraphiQL served entirely from this machine.

Strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from a
CDN. Here the same files, at the same versions (read from the page itself by
`python -m graph.graphiql`), are installed from the npm registry into the
virtualenv by `make` (see the Makefile's `graphiql-assets`),
served under ASSETS_PREFIX, and the page's CDN addresses are rewritten to point
at them. The page's subresource-integrity hashes stay in place: the files are
byte-identical to the CDN's, and a test checks that they still match. Without
the assets, the page says how to install them instead of reaching out.
Subscriptions: the page's fetcher opens a websocket at the same address and sends
the headers pane's JSON as `connection_init`'s payload (GraphiQL's toolkit merges
the headers into the connection parameters), which is where `/graphql`'s websocket
reads the token (graph/subscriptions.py); a browser test subscribes that way.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from strawberry.http.ides import get_graphql_ide_html

ASSETS_PREFIX = "/graphiql-assets"
_CDN_URL = re.compile(r"https://unpkg\.com/((?:@[^/@\"]+/)?[^/@\"]+)@([^/\"]+)/")

MISSING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>GraphiQL</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>GraphiQL's assets are not installed</h1>
<p>The GraphQL endpoint works (POST JSON <code>{"query": ...}</code> with an
<code>Authorization: Bearer</code> header), but the in-browser IDE needs its
scripts, which are installed with npm: run <code>make graphiql-assets</code>.</p>
</body></html>
"""


def assets_dir() -> Path | None:
    """node_modules of the virtualenv's GraphiQL packages, when installed."""
    folder = Path(sys.prefix) / "graphiql" / "node_modules"
    return folder if (folder / "graphiql").is_dir() else None


def npm_packages() -> list[str]:
    """`name@version` of every package the page loads, for `npm install`."""
    return sorted({f"{m.group(1)}@{m.group(2)}" for m in _CDN_URL.finditer(get_graphql_ide_html())})


def local_page() -> str:
    """Strawberry's GraphiQL page with every CDN address made local."""
    if assets_dir() is None:
        return MISSING_PAGE
    return _CDN_URL.sub(lambda m: f"{ASSETS_PREFIX}/{m.group(1)}/", get_graphql_ide_html())


def assets_mount() -> Mount | None:
    folder = assets_dir()
    if folder is None:
        return None
    return Mount(ASSETS_PREFIX, app=StaticFiles(directory=folder), name="graphiql-assets")


if __name__ == "__main__":
    # The Makefile asks which packages (at which versions) to install.
    print(" ".join(npm_packages()))
