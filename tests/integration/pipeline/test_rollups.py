"""The rebuild statements of storage.rollups against an independent Python computation."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import psycopg

from storage import changes, orgs, rollups
from storage.fills import Fill
from tests.factories import address, fill, ms
from tests.integration.pipeline.expected import Day, Expected, assert_org_days, kind, store

DAY = date(2026, 11, 2)


def _wallets(conn: psycopg.Connection, n: int) -> list[int]:
    return [w.id for w in orgs.upsert_wallets(conn, [address(i + 1) for i in range(n)])]


def _assert_wallet_day(conn: psycopg.Connection, wallet_id: int, day: date, exp: Day) -> None:
    got = rollups.wallet_day(conn, wallet_id, day)
    assert got is not None
    assert (got.trade_count, got.spot_volume_usd, got.perp_volume_usd) == (
        exp.trade_count,
        exp.spot,
        exp.perp,
    )
    assert (got.total_volume_usd, got.fees_usd, got.realized_pnl_usd) == (
        exp.total,
        exp.fees,
        exp.pnl,
    )


def test_domain_rules_on_hand_picked_fills(conn: psycopg.Connection) -> None:
    (wallet,) = _wallets(conn, 1)
    t = ms(2026, 11, 2, 12)
    batch = [
        # perp, including a builder-deployed one; the builder fee is inside `fee`
        fill(t, tid=1, coin="BTC", px=Decimal("100"), sz=Decimal("0.5"), fee=Decimal("0.05")),
        fill(
            t,
            tid=2,
            coin="xyz:TSLA",
            px=Decimal("250.25"),
            sz=Decimal("2"),
            fee=Decimal("0.3"),
            builder_fee=Decimal("0.1"),
            closed_pnl=Decimal("-12.5"),
        ),
        # spot: `@` index and pair names; a spot buy pays its fee in the base token
        fill(
            t,
            tid=3,
            coin="@107",
            px=Decimal("40"),
            sz=Decimal("3"),
            fee=Decimal("0.002"),
            fee_token="HYPE",
        ),
        fill(
            t,
            tid=4,
            coin="PURR/USDC",
            px=Decimal("0.2"),
            sz=Decimal("1000"),
            fee=Decimal("0.07"),
            closed_pnl=Decimal("3.25"),
        ),
        # a maker rebate
        fill(t, tid=5, coin="ETH", px=Decimal("3000"), sz=Decimal("0.1"), fee=Decimal("-0.03")),
        # a self-trade: same tid, two oids, both counted
        fill(t, tid=6, oid=1, coin="SOL", px=Decimal("150"), sz=Decimal("1"), side="B"),
        fill(t, tid=6, oid=2, coin="SOL", px=Decimal("150"), sz=Decimal("1"), side="A"),
    ]
    store(conn, wallet, batch)
    assert rollups.rebuild_wallet_day(conn, wallet, DAY)
    got = rollups.wallet_day(conn, wallet, DAY)
    assert got is not None
    assert got.trade_count == 7
    assert got.spot_volume_usd == Decimal("120") + Decimal("200")
    assert got.perp_volume_usd == Decimal("50") + Decimal("500.5") + Decimal("300") + 300
    # 0.05 + 0.3 + 0.002 × 40 + 0.07 − 0.03 + 0.1 + 0.1 (builder fee not added again)
    assert got.fees_usd == Decimal("0.67")
    assert got.realized_pnl_usd == Decimal("-9.25")


def test_utc_midnight_splits_days(conn: psycopg.Connection) -> None:
    (wallet,) = _wallets(conn, 1)
    midnight = ms(2026, 11, 3)
    batch = [fill(midnight - 1, tid=1), fill(midnight, tid=2), fill(midnight + 1, tid=3)]
    store(conn, wallet, batch)
    rollups.rebuild_wallet_day(conn, wallet, date(2026, 11, 2))
    rollups.rebuild_wallet_day(conn, wallet, date(2026, 11, 3))
    before = rollups.wallet_day(conn, wallet, date(2026, 11, 2))
    after = rollups.wallet_day(conn, wallet, date(2026, 11, 3))
    assert before is not None and before.trade_count == 1
    assert after is not None and after.trade_count == 2


def _random_fills(rng: random.Random, n: int, tid_base: int) -> list[Fill]:
    coins = ["BTC", "ETH", "xyz:TSLA", "@1", "@142", "PURR/USDC", "HYPE/USDC"]
    out = []
    for i in range(n):
        coin = rng.choice(coins)
        spot = coin.startswith("@") or "/" in coin
        px = Decimal(rng.randint(1, 10**7)) / Decimal(10 ** rng.randint(0, 6))
        out.append(
            fill(
                ms(2026, 11, rng.randint(1, 4), rng.randint(0, 23), rng.randint(0, 59)),
                tid=tid_base + i,
                oid=rng.randint(1, 3),
                coin=coin,
                px=px,
                sz=Decimal(rng.randint(1, 10**6)) / Decimal(10 ** rng.randint(0, 5)),
                fee=Decimal(rng.randint(-500, 5000)) / Decimal(10**6),
                fee_token=rng.choice(["HYPE", "USDC"]) if spot else "USDC",
                builder_fee=rng.choice([None, Decimal("0.001")]),
                closed_pnl=Decimal(rng.randint(-(10**6), 10**6)) / Decimal(100),
            )
        )
    return out


def test_random_fills_match_python_for_orgs_sharing_wallets(conn: psycopg.Connection) -> None:
    rng = random.Random(7)
    wallets = _wallets(conn, 6)
    expected = Expected()
    for n, wallet in enumerate(wallets):
        batch = _random_fills(rng, 40, tid_base=n * 1000)
        store(conn, wallet, batch)
        expected.add(wallet, batch)
    org_a = orgs.create_org(conn, "A").id
    org_b = orgs.create_org(conn, "B").id
    a_members, b_members = wallets[:4], wallets[2:]
    orgs.track_wallets(conn, org_a, [address(i + 1) for i in range(4)])
    orgs.track_wallets(conn, org_b, [address(i + 1) for i in range(2, 6)])

    days = sorted({day for _, day in expected.wallet_days})
    for day in days:
        rollups.rebuild_wallet_days(conn, wallets, day)
        for org in (org_a, org_b):
            rollups.rebuild_org_day(conn, org, day)
    for (wallet, day), exp in expected.wallet_days.items():
        _assert_wallet_day(conn, wallet, day, exp)
    assert_org_days(conn, org_a, expected.org_days(a_members))
    assert_org_days(conn, org_b, expected.org_days(b_members))
    _assert_coin_days(conn, expected)


COIN_DAYS = """
SELECT wallet_id, day, coin, market, trade_count, volume_usd, fees_usd, realized_pnl_usd,
       unpriced_fills
FROM wallet_coin_day_metrics ORDER BY 1, 2, 3
"""


def _assert_coin_days(conn: psycopg.Connection, expected: Expected) -> None:
    """The per-coin rollup is exactly the Python computation's, coin by coin."""
    got = {(r[0], r[1], r[2]): r[3:] for r in conn.execute(COIN_DAYS)}
    want = {
        key: (kind(key[2]), c.trade_count, c.volume, c.fees, c.pnl, c.unpriced)
        for key, c in expected.coin_days.items()
    }
    assert got == want


def test_coin_days_are_rebuilt_with_the_wallet_days(conn: psycopg.Connection) -> None:
    """Both statements write the per-coin rows with the wallet-days; a coin whose fills
    are gone loses its row; the wallet-day is the sum of its coins."""
    rng = random.Random(5)
    wallets = _wallets(conn, 3)
    expected = Expected()
    for n, wallet in enumerate(wallets):
        batch = _random_fills(rng, 40, tid_base=n * 1000)
        system = fill(ms(2026, 11, 2, 3), tid=0, oid=0, coin="@1", dir="Spot Dust Conversion",
                      fee=Decimal("0.25"), px=Decimal(1), sz=Decimal(1))  # fmt: skip
        batch.append(system)
        store(conn, wallet, batch)
        expected.add(wallet, batch)
    days = sorted({day for _, day in expected.wallet_days})
    for day in days:
        rollups.rebuild_all_wallet_days(conn, day)
    _assert_coin_days(conn, expected)
    sums = conn.execute(
        """SELECT m.wallet_id, m.day, m.trade_count, m.total_volume_usd, m.fees_usd,
                  m.realized_pnl_usd, m.unpriced_fills, c.trades, c.volume, c.fees, c.pnl,
                  c.unpriced
           FROM wallet_day_metrics m
           JOIN (SELECT wallet_id, day, sum(trade_count) AS trades, sum(volume_usd) AS volume,
                        sum(fees_usd) AS fees, sum(realized_pnl_usd) AS pnl,
                        sum(unpriced_fills) AS unpriced
                 FROM wallet_coin_day_metrics GROUP BY 1, 2) c USING (wallet_id, day)"""
    ).fetchall()
    assert len(sums) == len(expected.wallet_days)
    assert all(tuple(r[2:7]) == tuple(r[7:]) for r in sums)

    # One wallet's BTC fills of the day vanish: its BTC row goes, the rest stays.
    wallet, day = wallets[0], DAY
    conn.execute(
        "DELETE FROM hl_fills_raw WHERE wallet_id = %s AND coin = 'BTC' AND time >= %s "
        "AND time < %s",
        (wallet, ms(2026, 11, 2), ms(2026, 11, 3)),
    )
    expected.coin_days.pop((wallet, day, "BTC"), None)
    rollups.rebuild_wallet_days(conn, [wallet], day)
    _assert_coin_days(conn, expected)


def test_all_wallets_statement_equals_per_wallet_statements(conn: psycopg.Connection) -> None:
    rng = random.Random(11)
    wallets = _wallets(conn, 5)
    for n, wallet in enumerate(wallets):
        store(conn, wallet, _random_fills(rng, 30, tid_base=n * 1000))
    day = date(2026, 11, 2)
    for wallet in wallets:
        rollups.rebuild_wallet_day(conn, wallet, day)
    one_by_one = conn.execute(
        "SELECT * FROM wallet_day_metrics WHERE day = %s ORDER BY wallet_id", (day,)
    ).fetchall()
    conn.execute("DELETE FROM wallet_day_metrics")
    rollups.rebuild_all_wallet_days(conn, day)
    all_at_once = conn.execute(
        "SELECT * FROM wallet_day_metrics WHERE day = %s ORDER BY wallet_id", (day,)
    ).fetchall()
    strip = [r[:-1] for r in one_by_one]  # updated_at differs
    assert strip == [r[:-1] for r in all_at_once]
    assert len(strip) == len(wallets)


def test_rebuild_twice_is_the_same_and_vanished_fills_delete_rows(
    conn: psycopg.Connection,
) -> None:
    (wallet,) = _wallets(conn, 1)
    org = orgs.create_org(conn, "A").id
    orgs.track_wallets(conn, org, [address(1)])
    store(conn, wallet, [fill(ms(2026, 11, 2, 1), tid=1)])
    for _ in range(2):
        rollups.rebuild_wallet_day(conn, wallet, DAY)
        rollups.rebuild_org_day(conn, org, DAY)
    (only,) = rollups.org_days(conn, org)
    assert (only.dau, only.trade_count, only.total_volume_usd) == (1, 1, Decimal("201.0"))
    assert only.avg_volume_per_user == Decimal("201.00")

    conn.execute("DELETE FROM hl_fills_raw WHERE wallet_id = %s", (wallet,))
    assert not rollups.rebuild_wallet_day(conn, wallet, DAY)
    assert rollups.wallet_day(conn, wallet, DAY) is None
    assert not rollups.rebuild_org_day(conn, org, DAY)
    assert rollups.org_days(conn, org) == []


def test_average_per_user_rounds_to_cents(conn: psycopg.Connection) -> None:
    wallets = _wallets(conn, 3)
    org = orgs.create_org(conn, "A").id
    orgs.track_wallets(conn, org, [address(i + 1) for i in range(3)])
    expected = Expected()
    for n, wallet in enumerate(wallets):
        batch = [fill(ms(2026, 11, 2, 3), tid=n, px=Decimal("1"), sz=Decimal(n + 1) / 3)]
        store(conn, wallet, batch)
        expected.add(wallet, batch)
    rollups.rebuild_wallet_days(conn, wallets, DAY)
    rollups.rebuild_org_day(conn, org, DAY)
    (got,) = rollups.org_days(conn, org)
    assert got.avg_volume_per_user == expected.org_days(wallets)[DAY].avg_per_user
    assert got.avg_volume_per_user.as_tuple().exponent == -2


def test_untracked_wallet_leaves_org_numbers_on_rebuild(conn: psycopg.Connection) -> None:
    wallets = _wallets(conn, 2)
    org = orgs.create_org(conn, "A").id
    orgs.track_wallets(conn, org, [address(1), address(2)])
    for n, wallet in enumerate(wallets):
        store(conn, wallet, [fill(ms(2026, 11, 2, 5), tid=n)])
    rollups.rebuild_wallet_days(conn, wallets, DAY)
    rollups.rebuild_org_day(conn, org, DAY)
    assert rollups.org_days(conn, org)[0].dau == 2
    orgs.untrack_wallet(conn, org, address(2))
    assert rollups.active_days(conn, [wallets[1]]) == [DAY]
    rollups.rebuild_org_day(conn, org, DAY)
    assert rollups.org_days(conn, org)[0].dau == 1


def test_org_rebuild_notifies_listeners_on_commit(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {changes.CHANNEL}")
        with psycopg.connect(db_url) as writer:
            org = orgs.create_org(writer, "A").id
            rollups.rebuild_org_day(writer, org, DAY)
            writer.rollback()
            org = orgs.create_org(writer, "B").id
            rollups.rebuild_org_day(writer, org, DAY)
            writer.commit()
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert payloads == [f"{org} {DAY.isoformat()}"]
    assert changes.parse_change(payloads[0]) == changes.Change(org, DAY)


def test_a_jobs_wallet_days_chunk_returns_the_orgs_to_recompute(conn: psycopg.Connection) -> None:
    wallet, quiet = _wallets(conn, 2)
    a, b, _ = (orgs.create_org(conn, name).id for name in "ABC")
    for org in (a, b):
        orgs.track_wallets(conn, org, [address(1)])
    store(conn, wallet, [fill(ms(2026, 11, 2, 9), tid=1)])
    rollups.add_pending(conn, wallet, [DAY])
    rollups.add_pending(conn, quiet, [DAY])
    done = rollups.rollup_pending_chunk(conn, DAY)
    assert (done.wallet_ids, sorted(done.org_ids)) == ([wallet, quiet], sorted([a, b]))
    assert rollups.wallet_day(conn, wallet, DAY) is not None
    assert rollups.wallet_day(conn, quiet, DAY) is None
    assert rollups.rollup_pending_chunk(conn, date(2026, 11, 3)).wallet_ids == []
    setting = conn.execute("SHOW synchronous_commit").fetchone()
    assert setting == ("off",), "relaxed for this transaction only"
    conn.commit()
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
