"""Funding entries: validation into typed payments, and the simulator's hourly funding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hlsim.funding import HOUR_MS, funding_rate, payments
from hlsim.market import FUNDING_PAGE_LIMIT, Market
from jobs.hl_parse_funding import parse_funding, parse_fundings
from storage.funding import Funding

ZERO_HASH = "0x" + "0" * 64
DOC_ENTRY = {
    "time": 1681923833000,
    "hash": ZERO_HASH,
    "delta": {
        "type": "funding",
        "coin": "ETH",
        "usdc": "-3.625312",
        "szi": "49.1477",
        "fundingRate": "0.0000417",
        "nSamples": None,
    },
}


def with_delta(**changes: Any) -> dict[str, Any]:
    return {**DOC_ENTRY, "delta": {**DOC_ENTRY["delta"], **changes}}


def test_a_documented_entry_parses_exactly() -> None:
    assert parse_funding(DOC_ENTRY) == Funding(
        1681923833000, "ETH", Decimal("-3.625312"), Decimal("49.1477"), Decimal("0.0000417")
    )
    assert parse_funding(with_delta(nSamples=24)).n_samples == 24


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("nope", "must be a JSON object"),
        ({**DOC_ENTRY, "delta": None}, "delta must be an object"),
        (with_delta(type="deposit"), "delta.type must be 'funding'"),
        (with_delta(usdc="abc"), "delta.usdc must be a decimal"),
        (with_delta(usdc=None), "delta.usdc is missing"),
        (with_delta(szi="NaN"), "delta.szi must be a finite decimal"),
        (with_delta(coin=""), "delta.coin must be a non-empty string"),
        (with_delta(nSamples="3"), "delta.nSamples must be an integer"),
        ({**DOC_ENTRY, "time": "1681923833000"}, "time must be an integer"),
    ],
)
def test_malformed_entries_are_rejected_with_the_field_named(raw: object, reason: str) -> None:
    good, rejected = parse_fundings([DOC_ENTRY, raw])
    assert len(good) == 1 and len(rejected) == 1
    assert reason in rejected[0][1]


def _fill(time: int, side: str, sz: str, start: str, coin: str = "ETH") -> dict[str, Any]:
    return {"coin": coin, "time": time, "side": side, "sz": sz, "startPosition": start}


def test_simulated_funding_follows_the_position_hour_by_hour() -> None:
    t0 = 100 * HOUR_MS
    fills = [
        _fill(t0 + 5, "B", "2.0", "0.0"),  # long 2 from just after t0
        _fill(t0 + 2 * HOUR_MS, "A", "5.0", "2.0"),  # flips to short 3 exactly on the hour
        _fill(t0 + 3 * HOUR_MS + 1, "B", "3.0", "-3.0"),  # flat
    ]
    paid = payments(7, fills, t0 + 10 * HOUR_MS)
    assert [(p["time"] - t0) // HOUR_MS for p in paid] == [1, 2, 3]
    # On the hour of the flip the position before that millisecond's fills pays.
    assert [p["delta"]["szi"] for p in paid] == ["2.0", "2.0", "-3.0"]
    for p in paid:
        rate = funding_rate(7, "ETH", p["time"])
        assert Decimal(p["delta"]["fundingRate"]) == rate
        want = (-Decimal(p["delta"]["szi"]) * Decimal(3100) * rate).quantize(Decimal("0.000001"))
        assert Decimal(p["delta"]["usdc"]) == want, "a long pays a positive rate"
        assert p["hash"] == ZERO_HASH


def test_user_funding_pages_hold_at_most_500_entries_oldest_first() -> None:
    market = Market(3, now_ms=2_000 * HOUR_MS)
    wallet = market.add_wallet()
    market.add_fill(wallet, 1_000 * HOUR_MS, coin="BTC", side="B", sz="0.1", startPosition="0.0")
    market.add_fill(wallet, 1_000 * HOUR_MS, coin="SOL", side="A", sz="3.0", startPosition="0.0")
    truth = market.funding(wallet)
    assert len(truth) == 2_000
    page = market.user_funding(wallet, 0, None)
    assert page == truth[:FUNDING_PAGE_LIMIT]
    last = page[-1]["time"]
    assert market.user_funding(wallet, last, last) == [e for e in truth if e["time"] == last]
