"""What several test modules share about the services around the API: the Redis
database tests may use, and fair share's limits raised out of reach."""

from __future__ import annotations

import os

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# For scenarios about something other than fair share that flood the API from one
# token (tests/reliability/test_fair_share.py proves the limits themselves).
UNTHROTTLED = {
    "HL_ANALYTICS_CALLER_RPS": "100000",
    "HL_ANALYTICS_CALLER_BURST": "100000",
    "HL_ANALYTICS_ORG_RPS": "100000",
    "HL_ANALYTICS_ORG_BURST": "100000",
    "HL_ANALYTICS_CALLER_CONCURRENCY": "10000",
    "HL_ANALYTICS_ORG_CONCURRENCY": "10000",
    "HL_ANALYTICS_CALLER_COST_PER_S": "1000000000",
    "HL_ANALYTICS_CALLER_COST_BURST": "1000000000",
}


def redis_available(url: str = REDIS_URL) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True
