"""Org coin-days (migration 0020): what an org's `coinBreakdown` reads, in time that
does not grow with the org's wallets.

`org_coin_day_metrics` holds, per org, day and coin, the sums of the org's
wallet-coin-days (trades, volume, fees, realized PnL) and `traders`: a bitmap of the
org's wallets that had a trade of the coin that day, bit n (from the left) for the
wallet whose `org_wallets.ordinal` is n. A range's breakdown is then one index range
of the org's rows: the sums add up, and the range's distinct traders are the bits set
in the OR of its days' bitmaps (`bit_or`, `bit_count`, built into PostgreSQL).

Why bitmaps: the sums add up over days and wallets, the distinct count does not. Per
(wallet, coin) running totals, what the breakdown read before, are two probes per
pair, 2-3 s for the 100,000 pairs of 50,000 wallets (bench/bench_read_models.py). A
bitmap costs an eighth of a byte per org wallet and coin-day, so the read is linear in
the org's coin-days × wallets / 8 bytes, about 4.5 MB for two coins traded every day
of a year by 50,000 wallets, ORed in C. Counting exactly is required: the numbers must
be exactly right, so an estimate (HyperLogLog) would not do.

Kept with the org-day (`rebuild`, called by storage.rollups.rebuild_org_day under the
org-day's lock): every rebuild recomputes the day's rows of the org from its wallets'
rows of that day, so it is derivable like every other rollup and a wallet leaving the
org leaves the bitmaps of the days that are rolled up again for it (jobs/tracking.py).
A wallet's ordinal is given once, when it joins the org (migration 0020's trigger);
bitmaps of different lengths are read padded to the org's width (`_ORDINALS`).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import psycopg

# The org's coin-days of `day`, recomputed from its wallets' coin-days. The bitmap is
# assembled from the bytes that have a bit set, each preceded by the zero bytes of the
# gap since the previous one, so its cost follows the traders, not the org's size.
REBUILD = """
/* rebuild: INSERT INTO org_coin_day_metrics */
WITH m AS (
    SELECT m.coin, m.market, m.trade_count, m.volume_usd, m.fees_usd, m.realized_pnl_usd,
           ow.ordinal
    FROM org_wallets ow
    JOIN wallet_coin_day_metrics m ON m.wallet_id = ow.wallet_id AND m.day = %(day)s
    WHERE ow.org_id = %(org_id)s
),
sums AS (
    SELECT coin, min(market) AS market, sum(trade_count) AS trade_count,
           sum(volume_usd) AS volume_usd, sum(fees_usd) AS fees_usd,
           sum(realized_pnl_usd) AS realized_pnl_usd
    FROM m GROUP BY coin
),
bytes AS (
    SELECT coin, ordinal / 8 AS b, sum(128 >> (ordinal %% 8))::int AS v
    FROM m WHERE trade_count > 0 GROUP BY coin, ordinal / 8
),
gaps AS (
    SELECT coin, b, v, b - coalesce(lag(b) OVER (PARTITION BY coin ORDER BY b), -1) - 1 AS gap
    FROM bytes
),
bits AS (
    SELECT coin,
           ('x' || string_agg(repeat('00', gap) || lpad(to_hex(v), 2, '0'), '' ORDER BY b))
               ::bit varying AS traders
    FROM gaps GROUP BY coin
),
gone AS (
    DELETE FROM org_coin_day_metrics o
    WHERE o.org_id = %(org_id)s AND o.day = %(day)s
      AND NOT EXISTS (SELECT 1 FROM sums WHERE sums.coin = o.coin)
)
INSERT INTO org_coin_day_metrics AS o (org_id, day, coin, market, trade_count, volume_usd,
                                       fees_usd, realized_pnl_usd, traders)
SELECT %(org_id)s, %(day)s, s.coin, s.market, s.trade_count, s.volume_usd, s.fees_usd,
       s.realized_pnl_usd, coalesce(b.traders, B'')
FROM sums s LEFT JOIN bits b USING (coin)
ON CONFLICT (org_id, day, coin) DO UPDATE SET
    market = EXCLUDED.market,
    trade_count = EXCLUDED.trade_count,
    volume_usd = EXCLUDED.volume_usd,
    fees_usd = EXCLUDED.fees_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    traders = EXCLUDED.traders
WHERE (o.market, o.trade_count, o.volume_usd, o.fees_usd, o.realized_pnl_usd, o.traders)
      IS DISTINCT FROM (EXCLUDED.market, EXCLUDED.trade_count, EXCLUDED.volume_usd,
                        EXCLUDED.fees_usd, EXCLUDED.realized_pnl_usd, EXCLUDED.traders)
"""

# The ordinals given in the org: every bitmap of the org fits in that many bits (rounded
# up to whole bytes). A bitmap ends at its last byte with a trader, and `bit_or` needs
# equal lengths, so each is read cast to that width (a cast to bit(n) pads with zeros on
# the right; it drops only bits of wallets gone from the org, whose days are being
# rolled up again).
_ORDINALS = "SELECT coalesce(max(ordinal) + 1, 0) FROM org_wallets WHERE org_id = %(org_id)s"
# Per coin over [start, end]: by volume descending, ties by coin.
_BREAKDOWN = """
SELECT t.coin, coalesce(min(mk.display_name), t.coin), min(t.market),
       sum(t.trade_count)::bigint, sum(t.volume_usd), sum(t.fees_usd),
       sum(t.realized_pnl_usd), bit_count(bit_or(t.traders::bit({width})))
FROM org_coin_day_metrics t
LEFT JOIN hl_markets mk ON mk.coin = t.coin
WHERE t.org_id = %(org_id)s AND t.day BETWEEN %(start)s AND %(end)s
GROUP BY t.coin
ORDER BY sum(t.volume_usd) DESC, t.coin
"""


def rebuild(conn: psycopg.Connection, org_id: uuid.UUID, day: date) -> int:
    """Recomputes the org's coin-days of `day` in the caller's transaction, which holds
    the org-day's lock (storage.rollups.rebuild_org_day); returns rows written."""
    return conn.execute(REBUILD, {"org_id": org_id, "day": day}).rowcount


def breakdown_sql(ordinals: int) -> str:
    """The breakdown statement for an org that gave `ordinals` ordinals."""
    width = max(8, -(-int(ordinals) // 8) * 8)
    return _BREAKDOWN.format(width=width)


async def breakdown(
    conn: psycopg.AsyncConnection[Any], org_id: uuid.UUID, start: date, end: date
) -> list[tuple[Any, ...]]:
    """The org's coins over [start, end], inclusive: coin, display name, market, trades,
    volume, fees, realized PnL and distinct traders."""
    params = {"org_id": org_id, "start": start, "end": end}
    cur = await conn.execute(_ORDINALS, params)
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(breakdown_sql(int(row[0])), params)
    return await cur.fetchall()
