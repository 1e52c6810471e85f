"""Ledger updates end to end against the independent computation: every class of the
README's table, two zero-hash updates in one millisecond, a transfer to oneself, a type
no rule knows (stored, listed by status), a malformed entry (quarantined), the
simulator's own updates; deposits and withdrawals per wallet-day and org-day."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from hlsim.market import Market
from hlsim.trader import ZERO_HASH
from storage import ledger, orgs
from tests.cli import run_cli
from tests.integration.pipeline.expected import assert_org_days
from tests.integration.pipeline.support import expected_of, pipeline, sync, worker
from tests.simulator import FIXED_NOW_MS, StartSimulator

HOUR = 3_600_000
NOW = FIXED_NOW_MS
OTHER = "0x" + "ab" * 20
WALLET_DAYS = (
    "SELECT wallet_id, day, deposits_usd, withdrawals_usd FROM wallet_day_metrics ORDER BY 1, 2"
)


@pytest.fixture
def auto(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def planted(wallet: str) -> list[tuple[dict[str, Any], str, Decimal | None]]:
    """(delta, class, USDC) of each planted update, as the README's table says."""
    return [
        ({"type": "deposit", "usdc": "1000.5"}, "deposit", Decimal("1000.5")),
        ({"type": "withdraw", "usdc": "200.0", "nonce": 7, "fee": "1.0"}, "withdrawal",
         Decimal("201.0")),
        ({"type": "internalTransfer", "usdc": "50.25", "user": OTHER, "destination": wallet,
          "fee": "0.0"}, "deposit", Decimal("50.25")),
        ({"type": "internalTransfer", "usdc": "30.0", "user": wallet, "destination": OTHER,
          "fee": "1.0"}, "withdrawal", Decimal("31.0")),
        ({"type": "internalTransfer", "usdc": "5.0", "user": wallet, "destination": wallet,
          "fee": "0.0"}, "neither", None),
        ({"type": "spotTransfer", "token": "HYPE", "amount": "2.0", "usdcValue": "48.0",
          "user": OTHER, "destination": wallet, "fee": "0.0"}, "deposit", Decimal("48.0")),
        ({"type": "subAccountTransfer", "usdc": "70.0", "user": wallet, "destination": OTHER},
         "neither", None),
        ({"type": "vaultDeposit", "vault": OTHER, "usdc": "100.0"}, "vault_deposit",
         Decimal("100.0")),
        ({"type": "vaultWithdraw", "vault": OTHER, "user": wallet, "requestedUsd": "60.0",
          "commission": "1.0", "closingCost": "0.0", "basis": "60.0",
          "netWithdrawnUsd": "59.0"}, "vault_withdrawal", Decimal("59.0")),
        ({"type": "rewardsClaim", "amount": "3.0", "token": "USDC"}, "neither", None),
        ({"type": "someFutureType", "usdc": "9.0"}, "unknown", None),
    ]  # fmt: skip


def test_ledger_classes_and_days_match_the_independent_computation(
    auto: psycopg.Connection, db_url: str, start_simulator: StartSimulator
) -> None:
    market = Market.generate(13, wallets=3, days=3, now_ms=NOW, fills_per_day=(20, 80))
    wallet = market.add_wallet()
    market.add_fill(wallet, NOW - 60 * HOUR, coin="ETH")
    plan = planted(wallet)
    for n, (delta, _, _) in enumerate(plan):
        at = NOW - 50 * HOUR + n * 5 * HOUR  # across three UTC days
        market.add_raw_ledger(wallet, at, {"time": at, "hash": tx(n + 1), "delta": delta})
    # Two of one's own perp<->spot moves in one millisecond, both with a zero hash.
    for toPerp in (True, False):
        move = {"type": "accountClassTransfer", "usdc": "10.0", "toPerp": toPerp}
        market.add_raw_ledger(wallet, NOW - 2 * HOUR, {"time": NOW - 2 * HOUR, "hash": ZERO_HASH,
                                                       "delta": move})  # fmt: skip
    bad = {"time": NOW - HOUR, "hash": tx(99), "delta": {"type": "deposit", "usdc": "x"}}
    market.add_raw_ledger(wallet, NOW - HOUR, bad)
    server = start_simulator(market)
    org = orgs.create_org(auto, "A").id
    with auto.transaction():
        orgs.track_wallets(auto, org, market.wallets)
    ids = {w.address: w.id for w in orgs.upsert_wallets(auto, market.wallets)}
    with pipeline(db_url, server) as p, worker(p):
        assert sync(p, auto, org).failed == 0
        expected = expected_of(auto, server)
        assert_org_days(auto, org, expected.org_days(ids.values()))
        want = sorted(
            (w, d, day.deposits, day.withdrawals) for (w, d), day in expected.wallet_days.items()
        )
        first = auto.execute(WALLET_DAYS).fetchall()
        assert first == want
        assert sync(p, auto, org).failed == 0
        assert auto.execute(WALLET_DAYS).fetchall() == first, "a second sync changes nothing"

    stored = ledger.wallet_ledger(auto, ids[wallet])
    mine = {tx(n + 1) for n in range(len(plan))}
    got = {(u.delta["type"], u.cls, u.usdc) for u in stored if u.hash in mine}
    assert got == {(d["type"], c, u) for d, c, u in plan}
    own_moves = [u for u in stored if u.hash == ZERO_HASH]
    assert len(own_moves) == 2 and {u.cls for u in own_moves} == {"neither"}
    assert ledger.quarantined(auto, ids[wallet]) == 1
    for address, wallet_id in ids.items():
        valid = [e for e in market.ledger(address) if e is not bad]
        assert len(ledger.wallet_ledger(auto, wallet_id)) == len(valid), "each stored once"
    assert any(d.deposits for d in expected.wallet_days.values() if d.trade_count)

    unknown = {u.type: u for u in ledger.unknown_types(auto)}
    assert "someFutureType" in unknown and unknown["someFutureType"].wallets >= 1
    result = run_cli("status", env={"DATABASE_URL": db_url})
    assert result.code == 0, result.err
    assert any(line.startswith("someFutureType") for line in result.out.splitlines())
