"""Errors of the background jobs and of the Hyperliquid client.

Each class says in its docstring what happened; the docstring is the default
message. The job system retries `HyperliquidUnavailable` later and records
`HyperliquidRejected` as a failure that retrying will not fix.
"""

from __future__ import annotations

import math

from hl_core.errors import HLAnalyticsError


class JobError(HLAnalyticsError):
    """A background job failed."""


class HyperliquidError(JobError):
    """A request to Hyperliquid's API failed."""


class HyperliquidUnavailable(HyperliquidError):
    """Hyperliquid's API kept failing (rate limited, server errors, timeouts or no connection) after every retry; the job will be retried later."""  # noqa: E501


class HyperliquidRejected(HyperliquidError):
    """Hyperliquid's API rejected the request (a 4xx other than 429); retrying will not help."""


class RateLimiterUnavailable(HyperliquidError):
    """The shared rate limiter (PostgreSQL or Redis) cannot be reached: check DATABASE_URL or REDIS_URL."""  # noqa: E501


def check_positive(option: str, value: float, error: type[HLAnalyticsError]) -> None:
    """A command's count or duration (`--option`) must be above 0 and finite: `inf` would be
    a lease never ending, a shutdown never done, a tick or a look that never comes."""
    if not value > 0:
        raise error(f"--{option} must be above 0 (got {value})")
    if value == math.inf:
        raise error(f"--{option} must be a finite number (got {value})")
