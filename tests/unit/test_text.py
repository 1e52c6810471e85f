"""Operator text: control characters are refused, and escaped when printed."""

from __future__ import annotations

import pytest

from storage.errors import StorageError
from storage.text import check_safe, printable


def test_control_characters_are_refused() -> None:
    for text in ("a\x1b[31m", "\x00", "a\x7f", "\x85", "x\u202ey", "\udcff", "tab\there"):
        with pytest.raises(StorageError, match="control characters"):
            check_safe(text, "a name")
    for text in ("Acme Ltd", "Zürich AG", "東京", "emoji 🚀", "O'Brien & co"):
        check_safe(text, "a name")


def test_rows_stored_before_are_printed_escaped() -> None:
    assert printable("Evil\x1b[31mCorp") == "Evil\\x1b[31mCorp"
    assert printable("a\u202eb") == "a\\u202eb"
    assert printable("Zürich") == "Zürich"
