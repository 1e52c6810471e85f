"""Validation of raw Hyperliquid fills into typed records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from jobs.hl_parse import InvalidFill, parse_fill, parse_fills

RAW: dict[str, Any] = {
    "coin": "@107",
    "px": "18.435",
    "sz": "93.53",
    "side": "B",
    "time": 1681222254710,
    "startPosition": "26.86",
    "dir": "Buy",
    "closedPnl": "0.0",
    "hash": "0xa166e3fa63c25663024b03f2e0da011a00307e4017e3ef2ba93a7a0f1d7a0b2d",
    "oid": 90542681,
    "crossed": False,
    "fee": "-0.0187",
    "tid": 118906512037719,
    "feeToken": "HYPE",
    "builderFee": "0.001",
    "twapId": None,
}


def with_(**changes: Any) -> dict[str, Any]:
    raw = dict(RAW)
    for key, value in changes.items():
        if value is ...:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


def test_a_fill_is_typed_exactly() -> None:
    fill = parse_fill(RAW)
    assert (fill.time, fill.tid, fill.oid) == (1681222254710, 118906512037719, 90542681)
    assert fill.px == Decimal("18.435") and fill.sz == Decimal("93.53")
    assert fill.fee == Decimal("-0.0187") and fill.builder_fee == Decimal("0.001")
    assert fill.start_position == Decimal("26.86") and fill.closed_pnl == Decimal(0)
    assert fill.fee_token == "HYPE" and fill.coin == "@107" and fill.crossed is False
    assert fill.twap_id is None and fill.cloid is None and fill.liquidated_user is None


def test_liquidation_cloid_and_twap_are_kept() -> None:
    fill = parse_fill(
        with_(
            cloid="0x" + "1" * 32,
            twapId=3156,
            liquidation={"liquidatedUser": "0x" + "a" * 40, "markPx": "18.4", "method": "market"},
        )
    )
    assert fill.cloid == "0x" + "1" * 32 and fill.twap_id == 3156
    assert fill.liquidated_user == "0x" + "a" * 40
    assert fill.liquidation_mark_px == Decimal("18.4") and fill.liquidation_method == "market"


def test_decimals_decoded_as_decimal_numbers_are_accepted() -> None:
    assert parse_fill(with_(px=Decimal("18.435"))).px == Decimal("18.435")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"px": "abc"}, "px must be a decimal string"),
        ({"px": "NaN"}, "px must be a finite decimal"),
        ({"sz": "-1"}, "must not be negative"),
        ({"px": 18.435}, "px must be a decimal string"),
        ({"fee": ...}, "fee is missing"),
        ({"builderFee": "x"}, "builderFee must be a decimal string"),
        ({"time": "1681222254710"}, "time must be an integer"),
        ({"tid": ...}, "tid must be an integer"),
        ({"oid": True}, "oid must be an integer"),
        ({"oid": -5}, "oid is out of range"),
        ({"tid": 2**64}, "tid is out of range"),
        ({"side": "X"}, "side must be 'B' or 'A'"),
        ({"crossed": "yes"}, "crossed must be true or false"),
        ({"coin": ""}, "coin must be a non-empty string"),
        ({"feeToken": None}, "feeToken must be a non-empty string"),
        ({"twapId": "7"}, "twapId must be an integer"),
        ({"liquidation": "market"}, "liquidation must be an object"),
    ],
)
def test_each_malformed_field_is_named(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidFill, match=reason.replace("(", r"\(")):
        parse_fill(with_(**changes))


def test_a_page_is_split_into_fills_and_rejections_in_order() -> None:
    page: list[object] = [RAW, with_(tid=2, px="?"), [1, 2], with_(tid=3)]
    fills, rejected = parse_fills(page)
    assert [f.tid for f in fills] == [RAW["tid"], 3]
    assert [raw for raw, _ in rejected] == [page[1], page[2]]
    assert "px" in rejected[0][1] and "JSON object" in rejected[1][1]
