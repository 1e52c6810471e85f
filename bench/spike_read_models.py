"""Spike: which read model answers `topWallets` over 366 days at 50,000 wallets.

python -m bench.spike_read_models [WALLETS] [DAYS]

Seeds one org (set-based, `generate_series`, two of every three wallet-days
active) in a scratch database, builds each candidate from `wallet_day_metrics`
and times the top-50-by-volume statement over the whole history, a 90-day and a
7-day range ending on the last day, and a 180-day range in the middle:

- baseline: today's statement, summing `wallet_day_metrics` over the range;
- cumulative: per wallet, running totals on each active day
  (`wallet_cum_day_metrics`); a range total is the last running total on or
  before its end minus the last one before its start (two index lookups);
- months: per wallet-month sums, plus the range's partial months from the days;
- cumulative months: per wallet running totals at each month end (one row per
  wallet-month, so a month boundary is one index range of the org's wallets),
  plus the partial months' days.

The figures it printed on this machine are in storage/read_models.py.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import date, timedelta

import psycopg

from bench.common import bench_context

SEED = """
INSERT INTO orgs (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'Spike');
INSERT INTO wallets (address)
SELECT '0x' || lpad(to_hex(i), 40, '0') FROM generate_series(1, %(wallets)s) AS i;
INSERT INTO org_wallets (org_id, wallet_id)
SELECT '00000000-0000-0000-0000-00000000000a', id FROM wallets;
INSERT INTO wallet_day_metrics (wallet_id, day, trade_count, spot_volume_usd, perp_volume_usd,
                                outcome_volume_usd, fees_usd, realized_pnl_usd, unpriced_fills)
SELECT w, %(first)s::date + d, 1 + (w * 7 + d) %% 40, ((w * 13 + d) %% 1000)::numeric / 3,
       ((w * 17 + d * 3) %% 5000)::numeric / 7, 0, ((w + d) %% 90)::numeric / 11,
       ((w * 3 + d) %% 2001 - 1000)::numeric / 9, 0
FROM generate_series(1, %(wallets)s) AS w, generate_series(0, %(days)s - 1) AS d
WHERE (w + d) %% 3 <> 0;
"""

CUMULATIVE = """
CREATE TABLE spike_cum AS
SELECT wallet_id, day,
       sum(trade_count) OVER w AS trade_count, sum(total_volume_usd) OVER w AS volume,
       sum(fees_usd) OVER w AS fees, sum(realized_pnl_usd) OVER w AS pnl
FROM wallet_day_metrics WINDOW w AS (PARTITION BY wallet_id ORDER BY day);
ALTER TABLE spike_cum ADD PRIMARY KEY (wallet_id, day) INCLUDE (trade_count, volume, fees, pnl);
VACUUM ANALYZE spike_cum;
"""
TOP_CUMULATIVE = """
SELECT ow.wallet_id, e.volume - coalesce(s.volume, 0) AS v
FROM org_wallets ow
CROSS JOIN LATERAL (SELECT c.volume, c.trade_count FROM spike_cum c
                    WHERE c.wallet_id = ow.wallet_id AND c.day <= %(end)s
                    ORDER BY c.day DESC LIMIT 1) e
LEFT JOIN LATERAL (SELECT c.volume, c.trade_count FROM spike_cum c
                   WHERE c.wallet_id = ow.wallet_id AND c.day < %(start)s
                   ORDER BY c.day DESC LIMIT 1) s ON true
WHERE ow.org_id = %(org)s AND e.trade_count - coalesce(s.trade_count, 0) > 0
ORDER BY v DESC, ow.wallet_id LIMIT 50
"""

MONTHS = """
CREATE TABLE spike_month AS
SELECT wallet_id, date_trunc('month', day)::date AS month, sum(trade_count) AS trade_count,
       sum(total_volume_usd) AS volume, sum(fees_usd) AS fees, sum(realized_pnl_usd) AS pnl
FROM wallet_day_metrics GROUP BY 1, 2;
ALTER TABLE spike_month ADD PRIMARY KEY (month, wallet_id);
VACUUM ANALYZE spike_month;
"""
# Whole months inside [start, end] from the month table, the rest from the days.
TOP_MONTHS = """
WITH parts AS (
    SELECT wallet_id, volume, trade_count FROM spike_month
    WHERE month >= %(m_lo)s AND month < %(m_hi)s
    UNION ALL
    SELECT wallet_id, total_volume_usd, trade_count FROM wallet_day_metrics
    WHERE (day >= %(start)s AND day < %(m_lo)s) OR (day >= greatest(%(m_hi)s, %(start)s)
                                                   AND day <= %(end)s)
)
SELECT p.wallet_id, sum(p.volume) AS v
FROM org_wallets ow JOIN parts p ON p.wallet_id = ow.wallet_id
WHERE ow.org_id = %(org)s
GROUP BY p.wallet_id HAVING sum(p.trade_count) > 0
ORDER BY v DESC, p.wallet_id LIMIT 50
"""

CUM_MONTHS = """
CREATE TABLE spike_cum_month AS
SELECT m.wallet_id, m.month,
       sum(m.trade_count) OVER w AS trade_count, sum(m.volume) OVER w AS volume
FROM (SELECT ow.wallet_id, mo.month, coalesce(sm.trade_count, 0) AS trade_count,
             coalesce(sm.volume, 0) AS volume
      FROM org_wallets ow
      CROSS JOIN (SELECT DISTINCT month FROM spike_month) mo
      LEFT JOIN spike_month sm ON sm.wallet_id = ow.wallet_id AND sm.month = mo.month) m
WINDOW w AS (PARTITION BY m.wallet_id ORDER BY m.month);
ALTER TABLE spike_cum_month ADD PRIMARY KEY (month, wallet_id) INCLUDE (trade_count, volume);
VACUUM ANALYZE spike_cum_month;
"""
# Running total at a day = month-end total of the month before + that month's days.
TOP_CUM_MONTHS = """
WITH parts AS (
    SELECT wallet_id, volume, trade_count FROM spike_cum_month WHERE month = %(e_prev)s
    UNION ALL
    SELECT wallet_id, -volume, -trade_count FROM spike_cum_month WHERE month = %(s_prev)s
    UNION ALL
    SELECT wallet_id, total_volume_usd, trade_count FROM wallet_day_metrics
    WHERE day >= %(e_month)s AND day <= %(end)s
    UNION ALL
    SELECT wallet_id, -total_volume_usd, -trade_count FROM wallet_day_metrics
    WHERE day >= %(s_month)s AND day < %(start)s
)
SELECT p.wallet_id, sum(p.volume) AS v
FROM org_wallets ow JOIN parts p ON p.wallet_id = ow.wallet_id
WHERE ow.org_id = %(org)s
GROUP BY p.wallet_id HAVING sum(p.trade_count) > 0
ORDER BY v DESC, p.wallet_id LIMIT 50
"""

BASELINE = """
SELECT m.wallet_id, sum(m.total_volume_usd) AS v
FROM org_wallets ow JOIN wallet_day_metrics m ON m.wallet_id = ow.wallet_id
WHERE ow.org_id = %(org)s AND m.day BETWEEN %(start)s AND %(end)s
GROUP BY m.wallet_id HAVING sum(m.trade_count) > 0
ORDER BY v DESC, m.wallet_id LIMIT 50
"""

ORG = "00000000-0000-0000-0000-00000000000a"


def _month(d: date) -> date:
    return d.replace(day=1)


def _prev_month(d: date) -> date:
    return (_month(d) - timedelta(days=1)).replace(day=1)


def _params(start: date, end: date) -> dict[str, object]:
    m_lo = start if start.day == 1 else (_month(start) + timedelta(days=32)).replace(day=1)
    m_hi = _month(end + timedelta(days=1))
    return {
        "org": ORG,
        "start": start,
        "end": end,
        "m_lo": m_lo,
        "m_hi": max(m_hi, m_lo),
        "e_prev": _prev_month(end),
        "e_month": _month(end),
        "s_prev": _prev_month(start),
        "s_month": _month(start),
    }


def _time(conn: psycopg.Connection, statement: str, params: dict[str, object], runs: int) -> str:
    samples = []
    rows: list[tuple[object, ...]] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = conn.execute(statement, params).fetchall()
        samples.append((time.perf_counter() - t0) * 1000)
    top = rows[0][1] if rows else None
    return f"median {statistics.median(samples):8.1f} ms  max {max(samples):8.1f} ms  top {top}"


def _script(conn: psycopg.Connection, script: str, params: dict[str, object]) -> None:
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement, params or None)


def main(wallets: int = 50_000, days: int = 366) -> None:
    last = date(2026, 11, 30)
    first = last - timedelta(days=days - 1)
    with bench_context(quick=False) as ctx:
        url = ctx.database()
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            _script(conn, SEED, {"wallets": wallets, "days": days, "first": first})
            conn.execute("VACUUM ANALYZE")
            print(f"seeded in {time.perf_counter() - t0:.1f} s")
            for name, build in (("cum", CUMULATIVE), ("month", MONTHS), ("cum_month", CUM_MONTHS)):
                t0 = time.perf_counter()
                _script(conn, build.replace("%%", "%"), {})
                size = conn.execute(f"SELECT pg_total_relation_size('spike_{name}')").fetchone()
                assert size is not None
                print(f"built {name} in {time.perf_counter() - t0:.1f} s, {size[0] / 1e6:.0f} MB")
            ranges = {
                f"{days} days": (first, last),
                "90 days": (last - timedelta(days=89), last),
                "7 days": (last - timedelta(days=6), last),
                "180 middle": (first + timedelta(days=93), first + timedelta(days=272)),
            }
            for label, (start, end) in ranges.items():
                params = _params(start, end)
                print(f"-- {label}: {start} .. {end}")
                print(f"  baseline   {_time(conn, BASELINE, params, 2)}")
                print(f"  cumulative {_time(conn, TOP_CUMULATIVE, params, 5)}")
                print(f"  months     {_time(conn, TOP_MONTHS, params, 3)}")
                print(f"  cum months {_time(conn, TOP_CUM_MONTHS, params, 3)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
