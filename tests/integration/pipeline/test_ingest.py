"""jobs.ingest against the simulated exchange over real HTTP, without the broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest

from hlsim.market import Market
from hlsim.server import SimServer
from jobs.hl_client import HyperliquidClient
from jobs.ingest import IngestBusy, IngestReport, ingest_wallet
from jobs.markets import CoinResolver, MarketCatalog
from jobs.ratelimit import LocalRateLimiter
from storage import cursor, fills, locks, orgs
from storage.markets import market_kind
from storage.orgs import Wallet
from tests.simulator import StartSimulator, small_market

MINUTE = 60_000


class Days:
    """Records what ingest asked to roll up, and on which transaction state."""

    def __init__(self) -> None:
        self.calls: list[frozenset[date]] = []

    def __call__(self, conn: psycopg.Connection, wallet: Wallet, days: frozenset[date]) -> None:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        self.calls.append(days)

    @property
    def all(self) -> set[date]:
        return set().union(*self.calls)


async def run(
    conn: psycopg.Connection, server: SimServer, wallet: Wallet, days: Days, **kw: float
) -> IngestReport:
    async with HyperliquidClient(
        server.url, limiter=LocalRateLimiter(1000), timeout_s=2.0, backoff_s=0.01
    ) as client:
        return await ingest_wallet(conn, client, wallet, on_new_days=days, **kw)  # type: ignore[arg-type]


def _wallet(conn: psycopg.Connection, address: str) -> Wallet:
    return orgs.upsert_wallets(conn, [address])[0]


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


async def test_first_ingest_stores_every_fill_and_the_days_to_roll_up(
    auto: psycopg.Connection, simulator: SimServer
) -> None:
    address = simulator.market.wallets[-1]
    truth = simulator.market.fills(address)
    wallet = _wallet(auto, address)
    days = Days()
    report = await run(auto, simulator, wallet, days)
    assert report.start_ms == 0
    assert report.stored == len(truth) == fills.count_fills(auto, wallet.id)
    expected_days = {fills.day_of(int(raw["time"])) for raw in truth}
    assert days.all == expected_days == report.new_days
    state = cursor.get_cursor(auto, wallet.id)
    assert state is not None
    assert state.fills_stored == len(truth)
    assert state.last_fill_ms == max(int(raw["time"]) for raw in truth)
    assert state.synced_until_ms is not None and state.synced_until_ms >= state.last_fill_ms
    assert state.last_success_at is not None and state.last_error is None


async def test_second_ingest_resumes_with_overlap_and_stores_nothing(
    auto: psycopg.Connection, simulator: SimServer
) -> None:
    wallet = _wallet(auto, simulator.market.wallets[0])
    await run(auto, simulator, wallet, Days())
    synced = cursor.get_cursor(auto, wallet.id).synced_until_ms  # type: ignore[union-attr]
    days = Days()
    again = await run(auto, simulator, wallet, days)
    assert again.start_ms == synced - 10 * MINUTE  # type: ignore[operator]
    assert again.stored == 0 and days.calls == []


async def test_late_fills_inside_the_overlap_are_picked_up(
    auto: psycopg.Connection, start_simulator: StartSimulator
) -> None:
    now = int(time.time() * 1000)
    market = Market(3, now_ms=now + 10 * MINUTE)
    address = market.add_wallet()
    market.add_fill(address, now - 60 * MINUTE)
    server = start_simulator(market)
    wallet = _wallet(auto, address)
    await run(auto, server, wallet, Days())
    synced = cursor.get_cursor(auto, wallet.id).synced_until_ms  # type: ignore[union-attr]
    assert synced is not None

    # Reported late: times before the cursor. Inside the overlap → stored; before it → out
    # of reach of an incremental ingest (this is what the overlap is for).
    market.add_fill(address, synced - 5 * MINUTE, tid=900_001)
    market.add_fill(address, synced - 30 * MINUTE, tid=900_002)
    days = Days()
    report = await run(auto, server, wallet, days)
    assert report.stored == 1
    stored_tids = {
        r[0]
        for r in auto.execute("SELECT tid FROM hl_fills_raw WHERE wallet_id = %s", (wallet.id,))
    }
    assert 900_001 in stored_tids and 900_002 not in stored_tids
    assert days.all == {fills.day_of(synced - 5 * MINUTE)}


async def test_malformed_fills_are_quarantined_and_the_rest_stored(
    auto: psycopg.Connection, start_simulator: StartSimulator
) -> None:
    market = small_market(wallets=1, days=1)
    address = market.wallets[0]
    market.add_raw(address, market.now_ms - MINUTE, {"coin": "BTC", "px": "oops"})
    server = start_simulator(market)
    wallet = _wallet(auto, address)
    report = await run(auto, server, wallet, Days())
    assert report.rejected == 1 == fills.quarantined_count(auto, wallet.id)
    assert report.stored == len(market.fills(address)) - 1


async def test_a_second_ingest_of_the_same_wallet_waits_for_the_first(
    auto: psycopg.Connection, db_url: str, simulator: SimServer
) -> None:
    wallet = _wallet(auto, simulator.market.wallets[0])
    with psycopg.connect(db_url, autocommit=True) as other:
        assert locks.try_lock_wallet(other, wallet.id)
        with pytest.raises(IngestBusy):
            await run(auto, simulator, wallet, Days(), lock_wait_s=0.3)
        assert fills.count_fills(auto, wallet.id) == 0
    report = await run(auto, simulator, wallet, Days())
    assert report.stored == len(simulator.market.fills(wallet.address))


async def test_a_failed_ingest_records_its_error_and_keeps_the_cursor(
    auto: psycopg.Connection, simulator: SimServer
) -> None:
    wallet = _wallet(auto, simulator.market.wallets[1])
    simulator.state.faults.add_json({"status": 500, "count": 50})
    with pytest.raises(Exception, match="failed"):
        await run(auto, simulator, wallet, Days())
    state = cursor.get_cursor(auto, wallet.id)
    assert state is not None and state.synced_until_ms is None
    assert state.last_error is not None and "HyperliquidUnavailable" in state.last_error
    simulator.state.faults.clear()
    await run(auto, simulator, wallet, Days())
    healed = cursor.get_cursor(auto, wallet.id)
    assert healed is not None and healed.last_error is None and healed.last_success_at


async def test_coins_of_a_page_whose_transaction_failed_are_looked_up_again(
    auto: psycopg.Connection, simulator: SimServer
) -> None:
    """The process's catalog learns a coin only once its resolution committed: a page
    rolled back (the database lost mid-transaction) must not leave its coins unresolved
    on the retry, as if the rolled-back resolution had been stored."""
    wallet = _wallet(auto, simulator.market.wallets[0])
    coins = {raw["coin"] for raw in simulator.market.fills(wallet.address)}
    assert any(market_kind(c) == "spot" for c in coins), "the wallet needs a spot coin"
    catalog = MarketCatalog()

    def fail_once(conn: psycopg.Connection, wallet: Wallet, days: frozenset[date]) -> None:
        raise psycopg.OperationalError("the connection was lost")

    async with HyperliquidClient(
        simulator.url, limiter=LocalRateLimiter(1000), timeout_s=2.0, backoff_s=0.01
    ) as client:
        resolver = CoinResolver(catalog, client, lambda conn, coins: None)
        with pytest.raises(psycopg.OperationalError):
            await ingest_wallet(auto, client, wallet, on_new_days=fail_once, markets=resolver)
        await ingest_wallet(auto, client, wallet, on_new_days=Days(), markets=resolver)
    unresolved = auto.execute(
        "SELECT coin FROM hl_markets WHERE coin = ANY(%s) AND resolved_at IS NULL", (list(coins),)
    ).fetchall()
    assert unresolved == []
