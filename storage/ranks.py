"""Standing rankings: each tracked wallet's totals over the spans ending today (0021).

Why: `topWallets` over any range reads every wallet of the org (day totals, two slices
joined and sorted: 0.2-1 s at 50,000 wallets, bench/bench_read_models.py), since the
top N by a range total cannot be known without all of them. The dashboard's ranges
(D7, D30, D90) all end today, so their totals can be kept ready: a row per (org,
wallet, span) with an index per ordering on (org_id, span, key DESC), and the top N is
the first N entries of one index, whatever the org's size. Kept for the wallets that
traded in the span only (a ranking lists no other).

The spans end at `read_model_state.through` of 'org_wallet_ranks'; a reader uses them
only for a range ending exactly there and lasting a span (else the day totals).

Keeping them (each from the running totals, two probes per wallet and span):

- a rollup of wallet-days on a day inside the spans lists the pairs of those wallets
  as pending (`mark`, in its transaction: a row per pair, not three rows with seven
  index entries each); a day before every span changes each running total it touches
  by the same amount, so no span's total;
- the org's next org-day rollup recomputes its pending pairs' rows (`flush`, called by
  storage.rollups.rebuild_org_day), in the transaction that notifies the API of the
  org's change: a ranking changes with the org's other numbers, and a wallet rolled up
  many times between two org-day rollups is recomputed once;
- the scheduler's first tick of a UTC day moves `through` and recomputes every row
  (`shift`): the spans slid by a day for every wallet;
- tracking a wallet adds its rows for the org (`lock_for_tracking` then `track`);
  untracking drops them (and its pending pair) by the foreign keys' cascade;
- `hl-analytics rebuild` recomputes the rows of the wallets it rebuilt (`refresh`).

Concurrency: rollups, flushes and refreshes take the state row FOR SHARE; the shift
and tracking FOR UPDATE, first thing in their transactions (before the org's row,
which an org-day rollup takes KEY SHARE of: a flush takes the state row before that).
A shift or a tracking change so waits for the rollups in flight and reads their
running totals, and a rollup after it sees the new `through` and the org's new
wallets; nothing inserts a row for a pair being untracked (which the foreign key
would refuse). A rollup's `mark` locks a pending pair that already exists until it
commits, so a flush taking that pair waits for it and then reads its running totals.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta

import psycopg

from storage import read_models

RANKS = "org_wallet_ranks"
# The spans kept, in days: those of storage.dashboard's RANGE_DAYS.
SPANS = (7, 30, 90)
COLUMNS = read_models.WALLETS.columns

STATE = read_models.State(RANKS)
SELECT_THROUGH = STATE.select

# The (org, wallet) pairs' rows recomputed: each wallet's last running total on or
# before `through` minus its last one before each span's first day. A pair whose wallet
# did not trade in a span has no row for it.
_REFRESH = """
/* rebuild: INSERT INTO org_wallet_ranks */
WITH pairs AS (
    SELECT ow.org_id, ow.wallet_id, ow.address FROM org_wallets ow {where}
),
w AS (SELECT DISTINCT wallet_id FROM pairs),
totals AS (
    SELECT w.wallet_id, s.span, {diffs}
    FROM w
    CROSS JOIN LATERAL (
        SELECT {cols} FROM wallet_running_totals r
        WHERE r.wallet_id = w.wallet_id AND r.day <= %(through)s
        ORDER BY r.day DESC LIMIT 1
    ) e
    CROSS JOIN unnest(%(spans)s::smallint[]) AS s(span)
    LEFT JOIN LATERAL (
        SELECT {cols} FROM wallet_running_totals r
        WHERE r.wallet_id = w.wallet_id AND r.day <= %(through)s::date - s.span
        ORDER BY r.day DESC LIMIT 1
    ) b ON true
),
fresh AS (
    SELECT t.wallet_id, p.org_id, t.span, p.address, {t_cols}
    FROM pairs p JOIN totals t ON t.wallet_id = p.wallet_id
    WHERE t.trade_count > 0
),
-- The pairs' rows (by the key's leading columns: a wallet has rows only in the orgs
-- tracking it) that are not fresh.
gone AS (
    DELETE FROM org_wallet_ranks k
    WHERE {k_where}
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.wallet_id = k.wallet_id
                      AND f.org_id = k.org_id AND f.span = k.span)
)
INSERT INTO org_wallet_ranks AS k (wallet_id, org_id, span, address, {cols})
SELECT wallet_id, org_id, span, address, {cols} FROM fresh
ORDER BY wallet_id, org_id, span
ON CONFLICT (wallet_id, org_id, span) DO UPDATE SET
    {update}
WHERE {differs}
"""


def _refresh_sql(where: str, k_where: str) -> str:
    return _REFRESH.format(
        where=where,
        k_where=k_where,
        cols=", ".join(COLUMNS),
        t_cols=", ".join(f"t.{c}" for c in COLUMNS),
        diffs=", ".join(f"e.{c} - coalesce(b.{c}, 0) AS {c}" for c in COLUMNS),
        update=",\n    ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS),
        differs=" OR ".join(f"k.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in COLUMNS),
    )


# One statement per scope, not a NULL test on a parameter, so each has its own plan.
REFRESH_ALL = _refresh_sql("", "true")
REFRESH_WALLETS = _refresh_sql(
    "WHERE ow.wallet_id = ANY(%(wallet_ids)s)", "k.wallet_id = ANY(%(wallet_ids)s)"
)
REFRESH_PAIRS = _refresh_sql(
    "WHERE ow.org_id = %(org_id)s AND ow.wallet_id = ANY(%(wallet_ids)s)",
    "k.wallet_id = ANY(%(wallet_ids)s) AND k.org_id = %(org_id)s",
)


def _params(through: date, **more: object) -> dict[str, object]:
    return {"through": through, "spans": list(SPANS), **more}


def refresh(
    conn: psycopg.Connection, wallet_ids: Sequence[int] | None, day: date, *, one_day: bool
) -> int:
    """Keeps the rows of the wallets (None: every tracked one) whose running totals were
    just recomputed from `day` on, in the caller's transaction (which holds those
    wallets' rollup locks). `one_day` (a rollup: only `day`'s wallet-days changed): lists
    their pairs as pending for the org-day rollups (`mark`); else recomputes the rows.
    Returns the rows written."""
    through = STATE.share(conn)
    if through is None or day > through or (wallet_ids is not None and not wallet_ids):
        return 0
    if one_day:
        if day <= through - timedelta(days=max(SPANS)):
            return 0
        return mark(conn, wallet_ids)
    if wallet_ids is None:
        return conn.execute(REFRESH_ALL, _params(through)).rowcount
    params = _params(through, wallet_ids=sorted(set(wallet_ids)))
    return conn.execute(REFRESH_WALLETS, params).rowcount


# DO UPDATE, not DO NOTHING: a pair already pending is locked until the rollup
# commits, so a flush taking it meanwhile waits and then reads the rollup's totals.
_MARK = """
INSERT INTO org_wallet_ranks_pending (org_id, wallet_id)
SELECT ow.org_id, ow.wallet_id FROM org_wallets ow {where}
ORDER BY ow.org_id, ow.wallet_id
ON CONFLICT (org_id, wallet_id) DO UPDATE SET wallet_id = EXCLUDED.wallet_id
"""
MARK = _MARK.format(where="WHERE ow.wallet_id = ANY(%(wallet_ids)s)")
MARK_ALL = _MARK.format(where="")
# Locked in key order, as a rollup's `mark` locks them, so the two never deadlock.
_TAKE = """
DELETE FROM org_wallet_ranks_pending p
USING (SELECT wallet_id FROM org_wallet_ranks_pending WHERE org_id = %(org_id)s
       ORDER BY wallet_id FOR UPDATE) t
WHERE p.org_id = %(org_id)s AND p.wallet_id = t.wallet_id
RETURNING p.wallet_id
"""
_FORGET_PENDING = "DELETE FROM org_wallet_ranks_pending"


def mark(conn: psycopg.Connection, wallet_ids: Sequence[int] | None) -> int:
    """Lists the (org, wallet) pairs of the wallets (None: every tracked one) as pending,
    in the caller's (rollup) transaction; returns the pairs listed."""
    if wallet_ids is None:
        return conn.execute(MARK_ALL).rowcount
    return conn.execute(MARK, {"wallet_ids": sorted(set(wallet_ids))}).rowcount


def flush(conn: psycopg.Connection, org_id: uuid.UUID) -> int:
    """Recomputes the rows of the org's pending pairs and forgets them, in the caller's
    (org-day rollup) transaction, before it touches the org's row; returns the rows
    written."""
    through = STATE.share(conn)
    taken = [row[0] for row in conn.execute(_TAKE, {"org_id": org_id})]
    if through is None or not taken:
        return 0
    params = _params(through, org_id=org_id, wallet_ids=sorted(taken))
    return conn.execute(REFRESH_PAIRS, params).rowcount


def shift(conn: psycopg.Connection, today: date) -> int:
    """Moves the spans' end to `today` (building the rows the first time) and recomputes
    every row, in the caller's transaction; returns the rows written (0 when the spans
    already end there)."""
    moved, _ = STATE.advance(conn, today)
    if not moved:
        return 0
    conn.execute(_FORGET_PENDING)  # every row is recomputed
    return conn.execute(REFRESH_ALL, _params(today)).rowcount


def lock_for_tracking(conn: psycopg.Connection) -> date | None:
    """Called first in a transaction that changes which wallets an org tracks: waits for
    the rollups in flight and holds off new ones until commit. Returns `through`."""
    return STATE.lock(conn)


def track(
    conn: psycopg.Connection, org_id: uuid.UUID, wallet_ids: Sequence[int], through: date | None
) -> int:
    """Adds the rows of wallets the org has just started tracking (after
    `lock_for_tracking`, whose `through` is passed); returns the rows written."""
    if through is None or not wallet_ids:
        return 0
    params = _params(through, org_id=org_id, wallet_ids=sorted(set(wallet_ids)))
    return conn.execute(REFRESH_PAIRS, params).rowcount


# -- reading ---------------------------------------------------------------------------

# The org's top wallets over a kept span (parameters org_id, limit), in the ranking's
# order (the key descending, then the address): the first entries of the key's index.
# Only wallets that traded in the span have rows.
_TOP = """
SELECT row_number() OVER (ORDER BY {key} DESC, k.address), k.address, {columns}
FROM org_wallet_ranks k
WHERE k.org_id = %(org_id)s AND k.span = {span}
ORDER BY {key} DESC, k.address
LIMIT %(limit)s
"""


def span_of(start: date, end: date, through: date | None) -> int | None:
    """The kept span that is exactly [start, end], or None."""
    days = (end - start).days + 1
    return days if through is not None and end == through and days in SPANS else None


def top_sql(key: str, span: int, columns: Sequence[str]) -> str:
    """The ranking statement over the kept `span` (from `span_of`) by `key` (an
    expression of the columns, alias `k`; never user text), selecting `columns`."""
    assert span in SPANS
    return _TOP.format(key=key, span=int(span), columns=", ".join(f"k.{c}" for c in columns))
