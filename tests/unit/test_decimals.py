"""USD amounts leave the API with exactly 6 decimals, half-even; avgVolumePerUser with 2."""

from __future__ import annotations

from decimal import Decimal

import pytest

from graph.schema import _serialize_decimal
from graph.types import per_user, usd


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("0", "0.000000"),
        ("0E-10", "0.000000"),
        ("1959681.58433", "1959681.584330"),
        ("1320.9749645090", "1320.974965"),  # ...645090: above the half, up
        ("0.0000005", "0.000000"),  # exactly half: to the even 0
        ("0.0000015", "0.000002"),  # exactly half: to the even 2
        ("0.0000025", "0.000002"),
        ("-0.0000005", "0.000000"),  # never -0.000000
        ("-0.0000004999", "0.000000"),
        ("-0.0000015", "-0.000002"),
        ("-12.5", "-12.500000"),
        ("1E+3", "1000.000000"),
        ("123456789012345678901234567.1234565", "123456789012345678901234567.123456"),
    ],
)
def test_usd_amounts(stored: str, shown: str) -> None:
    assert _serialize_decimal(usd(Decimal(stored))) == shown


@pytest.mark.parametrize(
    ("total", "dau", "shown"),
    [
        ("0", 0, "0.00"),
        ("5", 0, "0.00"),
        ("600.875", 2, "300.44"),  # 300.4375
        ("0.05", 2, "0.02"),  # 0.025: half to even
        ("0.07", 2, "0.04"),  # 0.035: half to even
        ("10", 3, "3.33"),
        ("-0.01", 3, "0.00"),
    ],
)
def test_avg_volume_per_user(total: str, dau: int, shown: str) -> None:
    assert _serialize_decimal(per_user(Decimal(total), dau)) == shown


def test_prices_keep_their_digits() -> None:
    assert _serialize_decimal(Decimal("0.00012345678")) == "0.00012345678"
    assert _serialize_decimal(Decimal("-0E-3")) == "0.000"
