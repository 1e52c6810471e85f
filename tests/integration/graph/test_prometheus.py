"""`/metrics`: API requests, latency and errors by operation, in Prometheus' format."""

from __future__ import annotations

import re

from tests.integration.graph.conftest import Api


def _value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"{name}{{(.*)}} (\S+)$", line)
        if match and ",".join(sorted(match[1].split(","))) == wanted:
            return float(match[2])
    return 0.0


async def test_requests_latency_and_errors_are_counted_by_operation(api: Api) -> None:
    before = (await api.client.get(api.url + "/metrics")).text
    query = "{ dashboardSummary { trackedWallets } }"
    await api.data(query)
    await api.data(query)  # a cache hit keeps its operation label
    assert (await api.post(query, user=None)).status_code == 401
    assert (await api.post("{ nosuchField }")).status_code == 400
    after = (await api.client.get(api.url + "/metrics")).text

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    ok = {"operation": "dashboardSummary", "status": "200"}
    assert delta("hla_api_requests_total", **ok) == 2
    assert delta("hla_api_request_seconds_count", operation="dashboardSummary") == 2
    assert delta("hla_api_requests_total", operation="unparsed", status="401") == 1
    assert delta("hla_api_errors_total", operation="unparsed", kind="client") == 1
    # an unknown field is not a label of its own
    assert delta("hla_api_requests_total", operation="invalid", status="400") == 1
    assert "nosuchField" not in after
