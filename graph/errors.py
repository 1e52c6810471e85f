"""Errors the API shows to clients, each with its GraphQL code and HTTP status.

Only these (and GraphQL's own syntax and validation errors) reach a client with
their message; anything else is logged with the request id and masked.
"""

from __future__ import annotations

from hl_core.errors import HLAnalyticsError


class ClientError(HLAnalyticsError):
    """The request cannot be answered as sent."""

    code = "BAD_REQUEST"
    status = 400


class Unauthenticated(ClientError):
    """The request has no valid bearer token: send `Authorization: Bearer <JWT>`."""

    code = "UNAUTHENTICATED"
    status = 401


class NoProfile(ClientError):
    """The token is valid but its user has no profile: an admin adds it with `users add`."""

    code = "FORBIDDEN"
    status = 403


class PermissionDenied(ClientError):
    """Only an organisation's admins may do this."""

    code = "FORBIDDEN"
    status = 200  # a GraphQL field error: the rest of the document is still answered


class BadUserInput(ClientError):
    """An argument has a value that is not allowed."""

    code = "BAD_USER_INPUT"
    status = 200


class ServiceUnavailable(ClientError):
    """The database is unavailable; retry in a few seconds."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
