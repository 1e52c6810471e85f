"""A worker process for the limiter test: passes over its wallets, as fast as allowed.

    python -m tests.integration.hyperliquid.hammer --url U (--database D | --redis R | --local)
        --rps N --name LIMITER --seconds S WALLET...

Prints "ready" once imported, then reads the wall-clock start time T from stdin,
so that slow starts on a loaded machine do not stagger the processes. Every
wallet runs its own loop of passes concurrently, all through one shared limiter,
from T on, asking for no new page after T + S. Prints one JSON line at the end:
pages fetched per wallet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from jobs.hl_client import HyperliquidClient
from jobs.ratelimit import LocalRateLimiter, PostgresRateLimiter, RateLimiter, RedisRateLimiter


async def hammer(args: argparse.Namespace) -> dict[str, int]:
    limiter: RateLimiter
    if args.redis:
        limiter = RedisRateLimiter(args.redis, args.rps, name=args.name)
    elif args.local:
        limiter = LocalRateLimiter(args.rps)
    else:
        limiter = PostgresRateLimiter(args.database, args.rps, name=args.name)
    pages = dict.fromkeys(args.wallets, 0)
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    stop_at = start_at + args.seconds

    async with HyperliquidClient(args.url, limiter=limiter, timeout_s=5) as client:

        async def passes(address: str) -> None:
            while time.time() < stop_at:
                async for _ in client.fill_pages(address, 0, args.end_ms):
                    pages[address] += 1
                    if time.time() >= stop_at:
                        return

        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(passes(w) for w in args.wallets))
    return pages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--database")
    parser.add_argument("--redis")
    parser.add_argument("--local", action="store_true", help="a limiter of this process only")
    parser.add_argument("--rps", type=float, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--end-ms", type=int, required=True)
    parser.add_argument("wallets", nargs="+")
    print(json.dumps(asyncio.run(hammer(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
