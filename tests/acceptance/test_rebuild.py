"""`hl-analytics rebuild`: rollups recomputed from the raw fills, idempotent, with progress."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from storage import orgs, rollups
from tests.cli import run_cli
from tests.factories import address, fill, ms
from tests.integration.pipeline.expected import METRICS, store

COINS = "SELECT coin, trade_count, volume_usd FROM wallet_coin_day_metrics ORDER BY day, coin"


def _seed(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Acme")
        (wallet,), _ = orgs.track_wallets(conn, org.id, [address(1)])
        batch = [
            fill(ms(2026, 11, 2, 1), tid=1, coin="BTC", px=Decimal("100"), sz=Decimal("1")),
            fill(ms(2026, 11, 4, 1), tid=2, coin="xyz:TSLA", px=Decimal("250"), sz=Decimal("2"),
                 fee=Decimal("0.2"), fee_token="USDH"),
        ]  # fmt: skip
        store(conn, wallet.id, batch)


def test_rebuild_twice_gives_the_same_rows_and_follows_the_usd_tokens(db_url: str) -> None:
    _seed(db_url)
    env = {"DATABASE_URL": db_url}
    first = run_cli("rebuild", env=env)
    assert first.code == 0, first.err
    assert "rebuilding 3 day(s), 2026-11-02 to 2026-11-04" in first.out
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(METRICS).fetchall()
    assert [r[1].isoformat() for r in rows] == ["2026-11-02", "2026-11-04"]
    assert rows[1][7] == 500  # total volume: USDH counts at par by default
    with psycopg.connect(db_url) as conn:
        coins = conn.execute(COINS).fetchall()
    assert coins == [("BTC", 1, Decimal(100)), ("xyz:TSLA", 1, Decimal(500))]

    again = run_cli("rebuild", "--from", "2026-11-01", "--to", "2026-11-30", env=env)
    assert again.code == 0, again.err
    with psycopg.connect(db_url) as conn:
        assert conn.execute(METRICS).fetchall() == rows

    # USDH no longer a USD token: the HIP-3 fill's volume and fee become unpriced.
    narrowed = run_cli("rebuild", env={**env, "HYPERLIQUID_USD_TOKENS": "USDC"})
    assert narrowed.code == 0, narrowed.err
    with psycopg.connect(db_url) as conn:
        (day,) = [d for d in rollups.org_days(conn, rows[1][0]) if d.day.day == 4]
    assert (day.total_volume_usd, day.fees_usd, day.unpriced_fills) == (0, 0, 1)
    with psycopg.connect(db_url) as conn:  # the per-coin rollup follows
        assert conn.execute(COINS).fetchall() == [
            ("BTC", 1, Decimal(100)),
            ("xyz:TSLA", 1, Decimal(0)),
        ]


def test_rebuild_refuses_a_reversed_range_and_an_unknown_org(db_url: str) -> None:
    env = {"DATABASE_URL": db_url}
    reversed_ = run_cli("rebuild", "--from", "2026-11-05", "--to", "2026-11-01", env=env)
    assert reversed_.code == 1 and "is after --to" in reversed_.err
    unknown = run_cli("rebuild", "--org", "00000000-0000-0000-0000-000000000000", env=env)
    assert unknown.code == 1 and "no organisation has id" in unknown.err
    bad_day = run_cli("rebuild", "--from", "yesterday", env=env)
    assert bad_day.code == 2 and "use YYYY-MM-DD" in bad_day.err


def test_rebuild_of_an_org_larger_than_the_lock_table(db_url: str) -> None:
    """40,000 wallets: more than PostgreSQL's lock table holds with its defaults (64
    locks a connection × 100 connections, and some slack). Locking them all in one
    transaction failed with "out of shared memory"; chunks of a rollup's size do not."""
    with psycopg.connect(db_url) as conn:
        org = orgs.create_org(conn, "Large")
        wallets, _ = orgs.track_wallets(conn, org.id, [address(n) for n in range(1, 40001)])
        for n, wallet in enumerate(wallets[::4000]):
            store(conn, wallet.id, [fill(ms(2026, 11, 2, 1), tid=n + 1, px=Decimal("10"))])
    result = run_cli("rebuild", "--org", str(org.id), env={"DATABASE_URL": db_url})
    assert result.code == 0, result.err
    with psycopg.connect(db_url) as conn:
        (day,) = rollups.org_days(conn, org.id)
    assert day.dau == day.trade_count == 10
