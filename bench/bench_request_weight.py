"""Request weight per wallet and hour, by activity tier: every data kind beside fills alone.

Measured, not modelled: the real client (jobs.hl_client) polls the simulated
exchange over HTTP as the scheduler would, and the exchange's request log says
what each request weighed (20 per request, plus 1 per 20 fills or funding
entries answered). For each activity tier of jobs.polling a few wallets trade
at that tier's pace (the dormant tier: a position opened long ago and held);
after a first pass over their history (not counted), the market's clock moves
in steps of the tier's fill interval for some hours: every step polls each
wallet's fills from its cursor minus the 10-minute overlap, every hour
(jobs.plan_kinds.FUNDING_INTERVAL_S) its funding, and every 10 minutes
(POSITIONS_INTERVAL_S) an account snapshot (`clearinghouseState` of the default
dex and of each HIP-3 dex it traded, `spotClearinghouseState`), and every 6 hours
(LEDGER_INTERVAL_S) its ledger updates, as the scheduler does.

Figures per tier: weight per wallet-hour of fills and funding together, beside
fills alone; and how many wallets of that tier one IP keeps fresh at those
intervals. Hyperliquid gives an IP 1,200 weight a minute (72,000 an hour); the
scheduler plans fills within half of it (jobs.polling.BUDGET_SHARE), funding
within a tenth, snapshots within a fifth and ledger updates within a twentieth
(jobs.plan_kinds), so all kinds are kept fresh for the smallest of the four
counts, fills alone for the first. Informational rows:
the cost of funding is what they show, there is no target to meet.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bench.common import BenchContext, Result
from hlsim.app import SimState
from hlsim.market import Market
from hlsim.server import SimServer
from hlsim.weights import WeightBudget
from jobs import plan_kinds, polling
from jobs.hl_client import HyperliquidClient
from jobs.ingest import OVERLAP_MS
from jobs.ratelimit import LocalRateLimiter

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
IP_WEIGHT_PER_HOUR = 1200 * 60
NOW_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
BASELINE = "fills alone (userFillsByTime), same wallets and hours"


@dataclass(frozen=True)
class Tier:
    name: str
    fills_per_day: float  # 0: a dormant wallet holding a position
    interval_s: float


TIERS = (
    Tier("traded within the hour", 300, polling.TIERS[0][1]),
    Tier("traded within the day", 30, polling.TIERS[1][1]),
    Tier("traded within the week", 3, polling.TIERS[2][1]),
    Tier("dormant, a position open", 0, polling.DORMANT_INTERVAL_S),
)


@dataclass
class Spent:
    fills: int = 0
    funding: int = 0
    snapshots: int = 0
    ledger: int = 0


def _wallets(market: Market, tier: Tier, count: int) -> list[str]:
    if tier.fills_per_day:
        since = NOW_MS - 2 * DAY_MS
        return [
            market.add_wallet(fills_per_day=tier.fills_per_day, since_ms=since)
            for _ in range(count)
        ]
    out = []
    for _ in range(count):
        wallet = market.add_wallet()
        market.add_fill(
            wallet, NOW_MS - 3 * DAY_MS, coin="ETH", side="B", sz="1.0", startPosition="0.0"
        )
        out.append(wallet)
    return out


async def _measure(
    server: SimServer, market: Market, wallets: list[str], tier: Tier, hours: int
) -> Spent:
    fills_until: dict[str, int] = {}
    funding_until: dict[str, int] = {}
    ledger_until: dict[str, int] = {}
    async with HyperliquidClient(server.url, limiter=LocalRateLimiter(1e6)) as client:

        async def poll_fills(wallet: str) -> None:
            start = max(0, fills_until.get(wallet, 0) - OVERLAP_MS)
            async for page in client.fill_pages(wallet, start):
                fills_until[wallet] = page.complete_until_ms

        async def snapshot(wallet: str) -> None:
            dexes = {str(f["coin"]).split(":")[0] for f in market.fills(wallet) if ":" in f["coin"]}
            for dex in ["", *sorted(dexes)]:
                await client.clearinghouse_state(wallet, dex)
            await client.spot_clearinghouse_state(wallet)

        async def poll_ledger(wallet: str) -> None:
            start = max(0, ledger_until.get(wallet, 0) - OVERLAP_MS)
            async for page in client.ledger_pages(wallet, start):
                ledger_until[wallet] = page.complete_until_ms

        async def poll_funding(wallet: str) -> None:
            start = max(0, funding_until.get(wallet, 0) - OVERLAP_MS)
            async for page in client.funding_pages(wallet, start):
                funding_until[wallet] = page.complete_until_ms

        for wallet in wallets:  # the first pass over the history: not counted
            await poll_fills(wallet)
            await poll_funding(wallet)
            await poll_ledger(wallet)
        log = server.state.log
        log.clear()
        step_ms = int(tier.interval_s * 1000)
        funding_every_ms = int(plan_kinds.FUNDING_INTERVAL_S * 1000)
        end = market.now_ms + hours * HOUR_MS
        next_funding = market.now_ms + funding_every_ms
        snapshot_every_ms = int(plan_kinds.POSITIONS_INTERVAL_S * 1000)
        next_snapshot = market.now_ms + snapshot_every_ms
        ledger_every_ms = int(plan_kinds.LEDGER_INTERVAL_S * 1000)
        next_ledger = market.now_ms + ledger_every_ms
        clock = market.now_ms
        while clock < end:
            clock = min(end, clock + step_ms)
            market.advance(clock)
            for wallet in wallets:
                await poll_fills(wallet)
            while next_funding <= clock:
                for wallet in wallets:
                    await poll_funding(wallet)
                next_funding += funding_every_ms
            while next_snapshot <= clock:
                for wallet in wallets:
                    await snapshot(wallet)
                next_snapshot += snapshot_every_ms
            while next_ledger <= clock:
                for wallet in wallets:
                    await poll_ledger(wallet)
                next_ledger += ledger_every_ms
    spent = Spent()
    for entry in log.entries():
        if entry.type == "userFillsByTime":
            spent.fills += entry.weight
        elif entry.type == "userFunding":
            spent.funding += entry.weight
        elif entry.type in ("clearinghouseState", "spotClearinghouseState"):
            spent.snapshots += entry.weight
        elif entry.type == "userNonFundingLedgerUpdates":
            spent.ledger += entry.weight
    return spent


def run(ctx: BenchContext) -> list[Result]:
    count = ctx.scale(6, 2)
    results: list[Result] = []
    for tier in TIERS:
        # Long enough for every kind's interval (the ledger's: 6 hours) to come round.
        hours = ctx.scale(12, 6)
        market = Market(16, now_ms=NOW_MS)
        wallets = _wallets(market, tier, count)
        state = SimState(market, budget=WeightBudget(1e9))
        with SimServer(state) as server:
            spent = asyncio.run(_measure(server, market, wallets, tier, hours))
        per = count * hours
        fills_w = spent.fills / per
        funding_w = spent.funding / per
        snapshots_w = spent.snapshots / per
        ledger_w = spent.ledger / per
        results.append(
            Result(
                f"request weight per wallet-hour, {tier.name}: every kind",
                "weight",
                fills_w + funding_w + snapshots_w + ledger_w,
                BASELINE,
                fills_w,
                "- (measured)",
            )
        )
        fills_fresh = (
            IP_WEIGHT_PER_HOUR * polling.BUDGET_SHARE / fills_w if fills_w else float("inf")
        )
        funding_fresh = (
            IP_WEIGHT_PER_HOUR * plan_kinds.FUNDING_SHARE / funding_w if funding_w else float("inf")
        )
        snapshots_fresh = IP_WEIGHT_PER_HOUR * plan_kinds.POSITIONS_SHARE / snapshots_w
        ledger_fresh = (
            IP_WEIGHT_PER_HOUR * plan_kinds.LEDGER_SHARE / ledger_w if ledger_w else float("inf")
        )
        results.append(
            Result(
                f"wallets one IP keeps fresh, {tier.name}: every kind",
                "wallets",
                min(fills_fresh, funding_fresh, snapshots_fresh, ledger_fresh),
                BASELINE,
                fills_fresh,
                "- (at the tier's intervals)",
            )
        )
    return results
