"""Validation of `userFunding` entries into typed `storage.funding.Funding` records.

An entry is `{time, hash, delta: {type: "funding", coin, usdc, szi, fundingRate,
nSamples}}`; decimals arrive as strings (or `Decimal`, the client never decodes
floats). An entry that fails a check is rejected with a reason naming the field,
so it is quarantined while the rest of its page is stored, as fills are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobs.hl_parse import InvalidFill, _integer, _required_decimal, _required_text
from storage.funding import Funding


class InvalidFunding(ValueError):
    """A raw entry does not have the shape and types of a Hyperliquid funding payment."""


def parse_funding(raw: object) -> Funding:
    """The typed payment, or `InvalidFunding` saying which field is wrong."""
    if not isinstance(raw, dict):
        raise InvalidFunding(f"a funding entry must be a JSON object, got {type(raw).__name__}")
    delta: Any = raw.get("delta")
    if not isinstance(delta, dict):
        raise InvalidFunding(f"delta must be an object, got {delta!r}")
    if delta.get("type") != "funding":
        raise InvalidFunding(f"delta.type must be 'funding', got {delta.get('type')!r}")
    try:
        time_ms = _integer(raw, "time")
        n_samples = _integer(delta, "nSamples", optional=True)
        assert time_ms is not None
        return Funding(
            time=time_ms,
            coin=_required_text(delta, "coin"),
            usdc=_required_decimal(delta, "usdc"),
            szi=_required_decimal(delta, "szi"),
            funding_rate=_required_decimal(delta, "fundingRate"),
            n_samples=n_samples,
        )
    except InvalidFill as exc:
        where = "" if str(exc).startswith("time") else "delta."
        raise InvalidFunding(f"{where}{exc}") from None


def parse_fundings(raws: Iterable[object]) -> tuple[list[Funding], list[tuple[object, str]]]:
    """Splits a page into valid payments and (raw, reason) rejections, keeping order."""
    good: list[Funding] = []
    rejected: list[tuple[object, str]] = []
    for raw in raws:
        try:
            good.append(parse_funding(raw))
        except InvalidFunding as exc:
            rejected.append((raw, str(exc)))
    return good, rejected


def funding_time(raw: object) -> int:
    """A raw entry's time, -1 when it has none (to page on even past malformed entries)."""
    value = raw.get("time") if isinstance(raw, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
