"""Domain errors raised by storage; psycopg errors never cross this boundary.

`storage.db.errors` (and `async_errors`) is where they are translated.
"""

from __future__ import annotations

from hl_core.errors import HLAnalyticsError


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (psycopg's are several lines long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StorageError(HLAnalyticsError):
    """The database refused an operation."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached: check DATABASE_URL and that PostgreSQL is running."""


class IntegrityRefused(StorageError):
    """The database refused a change that breaks one of its constraints."""

    def __init__(self, message: str | None = None, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class MigrationError(StorageError):
    """The database schema does not match the migration files of this program."""


class NotFound(StorageError):
    """The requested row does not exist."""


class OrgNotFound(NotFound):
    """No organisation has that id: list them with `hl-analytics orgs list`."""


class InvalidAddress(StorageError):
    """A wallet address must be 0x followed by 40 hexadecimal digits."""


class TooManyWallets(StorageError):
    """The org would track more wallets than HL_ANALYTICS_MAX_WALLETS_PER_ORG allows."""


class InvalidRole(StorageError):
    """A role must be admin or viewer."""
