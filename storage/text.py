"""Text an operator gives (organisation names, user ids) must be safe to store and print.

Control characters (C0 and C1, including ESC, which starts ANSI terminal
sequences), lone surrogates (what Python makes of bytes that are not UTF-8) and
the invisible bidirectional overrides would be stored as they are and then
printed raw by `orgs list` or `status`, where they can recolour, move or hide
text. They are refused; rows stored before this check are printed escaped.
"""

from __future__ import annotations

import unicodedata

from storage.errors import StorageError

_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def check_safe(text: str, what: str) -> None:
    """Raises StorageError when `text` holds a character that is unsafe to store and print."""
    bad = sorted({_escape(c) for c in text if _unsafe(c)})
    if bad:
        raise StorageError(
            f"{what} must not contain control characters (found {', '.join(bad[:5])})"
        )


def printable(text: str) -> str:
    """`text` with unsafe characters escaped (for rows stored before they were refused)."""
    return "".join(_escape(c) if _unsafe(c) else c for c in text)
