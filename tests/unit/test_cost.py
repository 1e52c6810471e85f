"""The cost of a document (README, "Cost of a document"), and the cache's digest of a
request: what a request means, not how it is spelt."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import build_schema as build_sdl
from graphql import parse

from graph.cost import COSTS, CostOverBudget, check_budget, document_cost
from graph.requests import GraphQLRequest, RawRequest, meaning
from graph.schema import build_schema
from hl_core.settings import Settings

BUDGET = Settings.from_env({}).hl_analytics_cost_budget
W1 = "0x" + "1" * 40
YEAR = '{from: "2025-01-01", to: "2025-12-31"}'  # 365 days
LEAP_YEAR = '{from: "2024-01-01", to: "2024-12-31"}'  # 366 days
# A dashboard page: every root field once, each over 366 days and its longest list.
PAGE = f"""
query Page {{
  dashboardSummary {{ trackedWallets latest {{ day dau }} }}
  globalMetrics(between: {LEAP_YEAR}) {{ day totalVolumeUsd }}
  topWallets(between: {LEAP_YEAR}, limit: 100) {{ rank address }}
  wallet(address: "{W1}", between: {LEAP_YEAR}) {{
    days {{ day }} coins {{ coin }} fills(first: 200) {{ edges {{ node {{ tid }} }} }}
    accountValue(between: {LEAP_YEAR}) {{ day accountValueUsd }}
  }}
  coinBreakdown(between: {LEAP_YEAR}) {{ coin volumeUsd }}
  trackedWallets(first: 200) {{ totalCount edges {{ node {{ address }} }} }}
}}
"""
WIDE_D90 = "{ " + " ".join(f"a{i}: globalMetrics(range: D90) {{ day }}" for i in range(30)) + " }"


def cost(query: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    return document_cost(parse(query), name, variables)


def test_every_root_field_of_the_schema_has_a_cost() -> None:
    """A new root field must say what it costs (graph/cost.py's one table)."""
    sdl = build_sdl(build_schema().as_str())
    roots = {name for root in (sdl.query_type, sdl.mutation_type) if root for name in root.fields}
    assert roots == set(COSTS)


def test_the_formula() -> None:
    assert cost("{ dashboardSummary { day } }") == 2
    assert cost("{ globalMetrics { day } }") == 30  # the default range: D30
    assert cost("{ globalMetrics(range: D7) { day } }") == 7
    assert cost(f"{{ globalMetrics(range: D7, between: {YEAR}) {{ day }} }}") == 365
    assert cost("{ topWallets { rank } }") == 30 + 20
    assert cost("{ topWallets(range: D90, limit: 5) { rank } }") == 95
    assert cost(f'{{ wallet(address: "{W1}") {{ address }} }}') == 30
    fills = f'{{ wallet(address: "{W1}", range: D7) {{ fills {{ pageInfo {{ hasNextPage }} }} }} }}'
    assert cost(fills) == 7 + 50
    account = f'{{ wallet(address: "{W1}", range: D7) {{ accountValue(range: D90) {{ day }} }} }}'
    assert cost(account) == 7 + 90
    assert cost("{ coinBreakdown(range: D90) { coin } }") == 90
    assert cost("{ trackedWallets { totalCount } }") == 50
    assert cost("{ trackedWallets(first: 7) { totalCount } }") == 7
    assert cost(f'mutation {{ trackWallets(addresses: ["{W1}", "{W1}"]) {{ added }} }}') == 3
    assert cost(f'mutation {{ untrackWallet(address: "{W1}") }}') == 1


def test_variables_defaults_fragments_and_aliases_count() -> None:
    query = """
    query Q($r: MetricsRange = D90, $n: Int!, $b: DateRange) {
      a: globalMetrics(range: $r) { day }
      b: globalMetrics(range: $r, between: $b) { day }
      ...More
    }
    fragment More on Query {
      topWallets(limit: $n) { rank }
      ... on Query { x: coinBreakdown { coin } }
    }
    """
    between = {"from": "2025-01-01", "to": "2025-01-10"}
    assert cost(query, {"n": 10, "b": between}) == 90 + 10 + (30 + 10) + 30
    # A variable not sent leaves the argument to the schema's default.
    assert cost("query ($r: MetricsRange) { globalMetrics(range: $r) { day } }") == 30
    # Only the operation that runs counts.
    two = "query A { globalMetrics(range: D90) { day } } query B { dashboardSummary { day } }"
    assert cost(two, name="B") == 2
    assert cost(two) == 0  # no operation chosen: GraphQL refuses it without running anything


def test_the_budget_admits_a_dashboard_page_and_refuses_30_wide_aliases() -> None:
    page = cost(PAGE)
    assert page == 2 + 366 + (366 + 100) + (366 + 200 + 366) + 366 + 200
    check_budget(page, BUDGET)
    wide = cost(WIDE_D90)
    assert wide == 30 * 90
    with pytest.raises(CostOverBudget) as refused:
        check_budget(wide, BUDGET)
    assert refused.value.status == 400
    assert f"costs {wide}" in refused.value.message
    assert f"budget of {BUDGET}" in refused.value.message
    assert "HL_ANALYTICS_COST_BUDGET" in refused.value.message


def test_unreadable_arguments_count_as_the_most_they_could_be() -> None:
    bad = '{ globalMetrics(between: {from: "soon", to: "later"}) { day } }'
    assert cost(bad) == 366
    assert cost("{ trackedWallets(first: 100000) { totalCount } }") == 200


def test_a_fragment_bomb_is_not_expanded() -> None:
    """Fragments that each spread the next twice select 2^22 fields: left to validation
    (expanded, they would cost 2^22 × 90, after seconds of a blocked event loop)."""
    frags = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(22))
    bomb = "{ ...F0 } " + frags + " fragment F22 on Query { globalMetrics(range: D90) { day } }"
    assert cost(bomb) == 0


def digest(body: bytes) -> str:
    return meaning(RawRequest("POST", body, None).parse())


def test_the_digest_is_the_meaning_not_the_bytes() -> None:
    query = "query Q($r: MetricsRange) { globalMetrics(range: $r) { day dau } }"
    base = digest(json.dumps({"query": query, "variables": {"r": "D7"}}).encode())
    spellings = [
        {"variables": {"r": "D7"}, "query": query},  # key order
        {"query": query, "variables": {"r": "D7"}, "extra": "x", "extensions": {}},  # extra keys
        {
            "query": "query Q($r:MetricsRange){globalMetrics(range:$r){day,dau}}",
            "variables": {"r": "D7"},
        },
        {"query": "# a comment\n" + query.replace(" ", "\n  "), "variables": {"r": "D7"}},
    ]
    for spelling in spellings:
        assert digest(json.dumps(spelling).encode()) == base, spelling
    assert digest(json.dumps({"query": query, "variables": {"r": "D7"}}, indent=2).encode()) == base
    # What changes the meaning changes the digest.
    assert digest(json.dumps({"query": query, "variables": {"r": "D30"}}).encode()) != base
    renamed = query.replace("dau", "tradeCount")
    assert digest(json.dumps({"query": renamed, "variables": {"r": "D7"}}).encode()) != base
    named = {"query": query, "variables": {"r": "D7"}, "operationName": "Q"}
    assert digest(json.dumps(named).encode()) != base


def test_variables_key_order_does_not_matter() -> None:
    query = "query ($b: DateRange) { globalMetrics(between: $b) { day } }"
    one = GraphQLRequest(query, {"b": {"from": "2025-01-01", "to": "2025-01-02"}}, None, "POST")
    two = GraphQLRequest(query, {"b": {"to": "2025-01-02", "from": "2025-01-01"}}, None, "POST")
    assert meaning(one) == meaning(two)
