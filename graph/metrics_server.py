"""`/metrics` on a port of its own (`hl-analytics api --metrics-port P`).

The API's `/metrics` needs no login. Behind a public load balancer, serve it on
another port (bound to a private address, 127.0.0.1 by default) that only the
Prometheus server reaches; the API port then answers 404 for `/metrics`. The
server is prometheus_client's, in a thread of the API process, so a scrape
never waits for the event loop.
"""

from __future__ import annotations

import prometheus_client


def start(host: str, port: int) -> None:
    prometheus_client.start_http_server(port, addr=host)
