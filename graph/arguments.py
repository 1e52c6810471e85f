"""Checks of the arguments that several fields share: day ranges, page sizes, free text.

Each failure is a `BAD_USER_INPUT` whose message names the rule.
"""

from __future__ import annotations

from datetime import date

from graph.errors import BadUserInput
from storage.dashboard import MAX_RANGE_DAYS

PAGE_MIN, PAGE_MAX = 1, 200


def checked_days(start: date, end: date, today: date) -> tuple[date, date]:
    """A `between` range, valid when start <= end <= today and it covers at most 366 days."""
    if start > end:
        raise BadUserInput(f"between: from ({start}) is after to ({end}); a range needs from <= to")
    if end > today:
        raise BadUserInput(
            f"between: to ({end}) is after today ({today}, UTC); a range needs to <= today"
        )
    span = span_days(start, end)
    if span > MAX_RANGE_DAYS:
        raise BadUserInput(
            f"between: {start} to {end} covers {span} days; "
            f"a range covers at most {MAX_RANGE_DAYS} days"
        )
    return start, end


def span_days(start: date, end: date) -> int:
    """Days a range covers, both ends included: what its cost is counted by."""
    return (end - start).days + 1


def page_size(first: int | None, default: int = 50) -> int:
    """`first` of a connection: 1..200 (null: the default)."""
    if first is None:
        return default
    if not PAGE_MIN <= first <= PAGE_MAX:
        raise BadUserInput(f"first: {first} is out of range: first must be {PAGE_MIN}..{PAGE_MAX}")
    return first


def encodable(text: str) -> bool:
    """Whether `text` is valid Unicode: JSON can carry a lone surrogate (`"\\ud800"`),
    UTF-8 cannot, so sending it to PostgreSQL would fail the statement."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def checked_text(name: str, value: str, min_chars: int, max_chars: int) -> str:
    """A free-text argument (a search, a coin name): its length, no NUL character,
    which PostgreSQL's text cannot hold, and no lone surrogate, which UTF-8 cannot (either
    would fail the statement, not match nothing)."""
    if not min_chars <= len(value) <= max_chars:
        raise BadUserInput(f"{name}: {len(value)} characters: {min_chars} to {max_chars} allowed")
    if "\x00" in value:
        raise BadUserInput(f"{name}: the NUL character (U+0000) is not allowed")
    if not encodable(value):
        raise BadUserInput(f"{name}: a lone surrogate (U+D800..U+DFFF) is not a character")
    return value
