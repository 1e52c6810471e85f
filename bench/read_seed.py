"""One org of many wallets and a year of days, seeded set-based (`generate_series`).

What bench/bench_read_models.py measures and tests/integration/storage/
test_read_plans.py explains: two of every three wallet-days active, each with
one coin (the perp or the spot one, by day; the wallet-day is its sum), the org's
days summed from them, a few fills a day for the first `fill_wallets` wallets,
and the read models derived from the wallet-days as `hl-analytics rebuild` does.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

from hl_core.settings import DEFAULT_USD_TOKENS
from storage import dashboard, day_totals, org_coins, ranks
from storage.fills import DAY_MS, day_bounds_ms
from storage.rollups import pricing_params

ORG = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
USER = "read-bench"

# Statements of the seed, in order; parameters: wallets, days, first, lo, fill_wallets,
# and for the per-wallet ones (_SEED_WALLETS) the range of wallets w_lo..w_hi, which two
# connections seed side by side (the machine's two cores).
_SEED_ORG = (
    "INSERT INTO orgs (id, name) VALUES (%(org)s, 'Read models')",
    "INSERT INTO user_profiles (user_id, org_id, role) VALUES (%(user)s, %(org)s, 'viewer')",
    """INSERT INTO wallets (address)
       SELECT '0x' || lpad(to_hex(i), 40, '0') FROM generate_series(1, %(wallets)s) AS i""",
    """INSERT INTO org_wallets (org_id, wallet_id, created_at)
       SELECT %(org)s, id, %(first)s::date FROM wallets""",
    """INSERT INTO hl_markets (coin, market, dex, display_name, base_token, quote_token,
                               resolved_at)
       VALUES ('BTC', 'perp', NULL, 'BTC', 'BTC', 'USDC', now()),
              ('@107', 'spot', NULL, 'HYPE/USDC', 'HYPE', 'USDC', now())
       ON CONFLICT (coin) DO NOTHING""",
    """INSERT INTO hl_ingest_cursor (wallet_id, last_success_at)
       SELECT id, now() FROM wallets""",
)
_SEED_WALLETS = (
    # Per wallet, day and coin; a wallet-day is active when (w + d) % 3 <> 0, and trades
    # the perp on one of those days and the spot coin on the other.
    """INSERT INTO wallet_coin_day_metrics (wallet_id, day, coin, market, trade_count,
                                           volume_usd, fees_usd, realized_pnl_usd)
       SELECT w, %(first)s::date + d, c.coin, c.market, 1 + (w * 7 + d) %% 20,
              ((w * 13 + d * 3) %% 5000)::numeric / 7, ((w + d) %% 90)::numeric / 11,
              ((w * 3 + d) %% 2001 - 1000)::numeric / 9
       FROM generate_series(%(w_lo)s::int, %(w_hi)s::int) AS w,
            generate_series(0, %(days)s - 1) AS d,
            (VALUES (1, 'BTC', 'perp'), (2, '@107', 'spot')) AS c(n, coin, market)
       WHERE (w + d) %% 3 = c.n""",
    """INSERT INTO wallet_day_metrics (wallet_id, day, trade_count, spot_volume_usd,
                                      perp_volume_usd, outcome_volume_usd, fees_usd,
                                      realized_pnl_usd, unpriced_fills)
       SELECT wallet_id, day, sum(trade_count),
              coalesce(sum(volume_usd) FILTER (WHERE market = 'spot'), 0),
              coalesce(sum(volume_usd) FILTER (WHERE market = 'perp'), 0), 0,
              sum(fees_usd), sum(realized_pnl_usd), 0
       FROM wallet_coin_day_metrics WHERE wallet_id BETWEEN %(w_lo)s AND %(w_hi)s
       GROUP BY wallet_id, day""",
    # Four fills a day for the first wallets, on every day.
    f"""INSERT INTO hl_fills_raw (wallet_id, time, tid, oid, coin, side, px, sz, dir,
                                 start_position, closed_pnl, fee, fee_token, builder_fee,
                                 hash, crossed)
       SELECT w, %(lo)s + d::bigint * {DAY_MS} + k * 3600000, w * 10000000 + d * 10 + k,
              d * 10 + k, CASE WHEN k %% 2 = 0 THEN 'BTC' ELSE '@107' END,
              CASE WHEN k %% 2 = 0 THEN 'B' ELSE 'A' END, (100 + w %% 97)::numeric,
              (1 + k)::numeric / 100, 'Open Long', 0, 0, 0.01, 'USDC', NULL, '0x00', true
       FROM generate_series(%(w_lo)s::int, least(%(w_hi)s, %(fill_wallets)s)::int) AS w,
            generate_series(0, %(days)s - 1) AS d,
            generate_series(0, 3) AS k""",
)
# After every wallet's days: the org's.
_SEED_DAYS = (
    """INSERT INTO global_day_metrics (org_id, day, dau, trade_count, spot_volume_usd,
                                      perp_volume_usd, outcome_volume_usd, total_volume_usd,
                                      fees_usd, realized_pnl_usd, avg_volume_per_user)
       SELECT %(org)s, day, count(*), sum(trade_count), sum(spot_volume_usd),
              sum(perp_volume_usd), 0, sum(total_volume_usd), sum(fees_usd),
              sum(realized_pnl_usd), round(sum(total_volume_usd) / count(*), 2)
       FROM wallet_day_metrics GROUP BY day""",
)


@dataclass(frozen=True)
class Seeded:
    org: uuid.UUID
    first: date
    last: date
    wallets: int

    def address(self, n: int) -> str:
        return "0x" + f"{n:040x}"


def seed(
    url: str, wallets: int, days: int, last: date, fill_wallets: int = 50, workers: int = 2
) -> Seeded:
    """Seeds the org in the database at `url`: the org-wide rows, then the wallets' days
    and their read models by `workers` connections side by side, each with its share of
    the wallets (the statements a rollup runs: storage.read_models), then the org's days.
    The caller ANALYZEs."""
    first = last - timedelta(days=days - 1)
    params: dict[str, object] = {
        "org": ORG,
        "user": USER,
        "wallets": wallets,
        "days": days,
        "first": first,
        "lo": day_bounds_ms(first)[0],
        "fill_wallets": min(fill_wallets, wallets),
    }
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _SEED_ORG:
            conn.execute(statement, params)
        # Kept through the last day from the start: each share's refresh writes its rows.
        day_totals.extend_day_totals(conn, last)

    def share(bounds: tuple[int, int]) -> None:
        lo, hi = bounds
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in _SEED_WALLETS:
                conn.execute(statement, {**params, "w_lo": lo, "w_hi": hi})
            ids = list(range(lo, hi + 1))
            with conn.transaction():  # a backfill's rollup: the day totals go stale ...
                day_totals.refresh_read_models(conn, ids, first)
            day_totals.freshen_all(conn)  # ... until the scheduler's tick freshens them

    step = -(-wallets // workers)
    shares = [(lo, min(lo + step - 1, wallets)) for lo in range(1, wallets + 1, step)]
    with ThreadPoolExecutor(len(shares)) as pool:
        list(pool.map(share, shares))
    with psycopg.connect(url, autocommit=True) as conn:
        day_totals.freshen_all(conn)  # what a share left when the other held its batch
        for statement in _SEED_DAYS:
            conn.execute(statement, params)

    def org_coin_days(offsets: range) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for offset in offsets:
                org_coins.rebuild(conn, ORG, first + timedelta(days=offset))

    # What each org-day rollup writes, the days split between the connections.
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(org_coin_days, [range(n, days, workers) for n in range(workers)]))
    with psycopg.connect(url) as conn:  # the scheduler's first tick of `last`
        ranks.shift(conn, last)
    return Seeded(ORG, first, last, wallets)


@dataclass(frozen=True)
class Read:
    """One statement the API runs, with the parameters a request would give it."""

    name: str
    sql: str
    params: dict[str, object]


def api_reads(seeded: Seeded, orders: tuple[str, ...] = tuple(dashboard.ORDERS)) -> list[Read]:
    """Every read statement of the API over the seeded org: the longest range (366 days
    or the history), 90 and 7 days ending on its last day, and the middle half of the history
    (a `between`)."""
    org, last = seeded.org, seeded.last
    quarter = timedelta(days=(last - seeded.first).days // 4)
    ranges = {
        "366d": (last - timedelta(days=365), last),
        "90d": (last - timedelta(days=89), last),
        "7d": (last - timedelta(days=6), last),
        "middle half": (seeded.first + quarter, last - quarter),
    }
    address = seeded.address(1)
    reads = [
        Read("dashboardSummary", dashboard.SELECT_SUMMARY, {"org_id": org}),
        Read(
            "trackedWallets page",
            dashboard.SELECT_TRACKED_WALLETS,
            {"org_id": org, "address": None, "search": None, "after": None, "limit": 51},
        ),
        Read(
            "trackedWallets search",
            dashboard.SELECT_TRACKED_WALLETS,
            {"org_id": org, "address": None, "search": address[:36], "after": None, "limit": 51},
        ),
        Read(
            "trackedWallets count",
            dashboard.COUNT_TRACKED_WALLETS,
            {"org_id": org, "search": "no-such-label"},
        ),
    ]
    for label, (start, end) in ranges.items():
        span = {"org_id": org, "start": start, "end": end}
        reads.append(Read(f"globalMetrics {label}", dashboard.SELECT_GLOBAL_SERIES, span))
        for order in orders:
            reads.append(
                Read(
                    f"topWallets {order} {label}",
                    dashboard.top_wallets_sql(order, start, end, last, last),
                    {**span, "limit": 100},
                )
            )
        reads.append(
            Read(
                f"wallet {label}",
                dashboard.SELECT_WALLET_SERIES,
                {**span, "address": address},
            )
        )
        # `address` None: the whole org, in bench/bench_read_models.py's baseline.
        coins = org_coins.breakdown_sql(seeded.wallets)
        reads.append(Read(f"coinBreakdown {label}", coins, {**span, "address": None}))
        reads.append(
            Read(
                f"wallet coins {label}",
                dashboard.wallet_coins_sql(start, end),
                {**span, "address": address},
            )
        )
        lo, hi = day_bounds_ms(start)[0], day_bounds_ms(end)[1]
        reads.append(
            Read(
                f"fills {label}",
                dashboard.SELECT_FILLS,
                {
                    "org_id": org,
                    "address": address,
                    "lo": lo,
                    "hi": hi,
                    "coin": None,
                    "after_time": None,
                    "after_tid": None,
                    "after_oid": None,
                    "after_coin": None,
                    "limit": 51,
                    **pricing_params(DEFAULT_USD_TOKENS),
                },
            )
        )
    return reads
