"""Errors shared by every part of the program.

Each class says in its docstring what happened; the docstring is the default
message, and the command line prints the message as a single line.
"""

from __future__ import annotations


class HLAnalyticsError(Exception):
    """Something went wrong in hl-analytics."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class SettingsError(HLAnalyticsError):
    """A setting read from the environment has a value that is not allowed."""
