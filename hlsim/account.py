"""`clearinghouseState` and `spotClearinghouseState` of the simulated market, from a
wallet's own fills and funding.

Perps (per dex): each coin's position replays its fills (signed size; average
entry price, reset on a flip, as the trader keeps it); the mark price is the
coin's listed price, so `unrealizedPnl = szi × (mark − entryPx)` and
`positionValue = |szi| × mark`. Leverage is cross on the default dex, isolated
on HIP-3 dexes (isolated-only), at min(5, the coin's max). `cumFunding` is
Hyperliquid's sign, positive = paid: all time, since the position opened, since
its size last changed. The dex's `accountValue` = its starting collateral
(`START_COLLATERAL`, on a dex the wallet has traded) + closed PnL − fees of its
fills + funding received + unrealized PnL.

Spot: every token's `total` replays the spot fills (a buy adds the base, pays
`px × sz` of the quote and its fee in the base; a sell the reverse, its fee in
the quote, never below 0 of the base, as the trader keeps it) from
`START_SPOT`; `entryNtl` is the base's cost at average price; `hold` is 0
(the simulator keeps no open orders).

Decimals are strings, as the API sends them; `time` is the market clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from hlsim.coins import BY_NAME, QUOTE, TOKEN_INDEX, Coin
from hlsim.trader import fmt

ZERO = Decimal(0)
START_COLLATERAL = {"xyz": Decimal(20_000)}  # the default dex's comes from the ledger
START_SPOT = {QUOTE: Decimal(100_000), "USDT0": Decimal(5_000), "PURR": Decimal(50_000)}
LEVERAGE = 5


@dataclass
class _Perp:
    szi: Decimal = ZERO
    entry: Decimal = ZERO
    all_time: Decimal = ZERO  # funding paid, Hyperliquid's sign
    since_open: Decimal = ZERO
    since_change: Decimal = ZERO


@dataclass
class _Dex:
    traded: bool = False
    closed: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO  # received
    coins: dict[str, _Perp] = field(default_factory=dict)


def _decimal(raw: dict[str, Any], key: str) -> Decimal | None:
    try:
        return Decimal(str(raw[key]))
    except (KeyError, InvalidOperation):
        return None


def _events(fills: Iterable[Any], funding: Iterable[Any]) -> list[tuple[int, int, Any]]:
    """Fills and funding in time order; at one millisecond funding first (it settles
    the position held before that millisecond's fills)."""
    out = [(e["time"], 0, e) for e in funding if isinstance(e, dict) and "delta" in e]
    out += [
        (f["time"], 1, f) for f in fills if isinstance(f, dict) and isinstance(f.get("time"), int)
    ]
    out.sort(key=lambda item: (item[0], item[1]))
    return out


def _replay(fills: Iterable[Any], funding: Iterable[Any]) -> dict[str, _Dex]:
    dexes: dict[str, _Dex] = {}
    for _, kind, raw in _events(fills, funding):
        if kind == 0:
            delta = raw.get("delta")
            coin = BY_NAME.get(str(delta.get("coin"))) if isinstance(delta, dict) else None
            usdc = _decimal(delta, "usdc") if isinstance(delta, dict) else None
            if coin is None or usdc is None:
                continue
            book = dexes.setdefault(coin.dex or "", _Dex())
            book.funding += usdc
            pos = book.coins.setdefault(coin.name, _Perp())
            pos.all_time -= usdc
            pos.since_open -= usdc
            pos.since_change -= usdc
            continue
        coin = BY_NAME.get(str(raw.get("coin")))
        sz, closed, fee = (_decimal(raw, k) for k in ("sz", "closedPnl", "fee"))
        if coin is None or not coin.perp or sz is None or closed is None or fee is None:
            continue
        px = _decimal(raw, "px") or ZERO
        book = dexes.setdefault(coin.dex or "", _Dex())
        book.traded = True
        book.closed += closed
        book.fees += fee
        _apply(book.coins.setdefault(coin.name, _Perp()), raw.get("side") == "B", sz, px)
    return dexes


def _apply(pos: _Perp, buy: bool, sz: Decimal, px: Decimal) -> None:
    signed = sz if buy else -sz
    new = pos.szi + signed
    if new == 0:
        pos.entry = ZERO
    elif pos.szi == 0 or (pos.szi > 0) == (signed > 0):
        pos.entry = (pos.entry * abs(pos.szi) + px * sz) / abs(new)
    elif (pos.szi > 0) != (new > 0):
        pos.entry = px  # flipped: the new side opened at this fill's price
    if pos.szi == 0 or new == 0 or (pos.szi > 0) != (new > 0):
        pos.since_open = ZERO
    pos.since_change = ZERO
    pos.szi = new


def _leverage(coin: Coin) -> int:
    return min(LEVERAGE, coin.max_leverage or LEVERAGE)


def _position(coin: Coin, pos: _Perp) -> tuple[dict[str, Any], Decimal, Decimal]:
    mark = coin.price
    lev = _leverage(coin)
    value = abs(pos.szi) * mark
    unrealized = pos.szi * (mark - pos.entry)
    margin = value / lev
    liq = pos.entry * (1 - Decimal(1) / lev) if pos.szi > 0 else pos.entry * (1 + Decimal(1) / lev)
    leverage: dict[str, Any] = {"type": "isolated" if coin.dex else "cross", "value": lev}
    if coin.dex:
        leverage["rawUsd"] = fmt(margin - value if pos.szi > 0 else margin + value)
    position = {
        "coin": coin.name,
        "szi": fmt(pos.szi, coin.sz_places),
        "leverage": leverage,
        "entryPx": fmt(pos.entry, 6),
        "positionValue": fmt(value),
        "unrealizedPnl": fmt(unrealized),
        "returnOnEquity": fmt(unrealized / margin if margin else ZERO),
        "liquidationPx": fmt(liq, 6),
        "marginUsed": fmt(margin),
        "maxLeverage": coin.max_leverage,
        "cumFunding": {
            "allTime": fmt(pos.all_time),
            "sinceOpen": fmt(pos.since_open),
            "sinceChange": fmt(pos.since_change),
        },
    }
    return {"type": "oneWay", "position": position}, unrealized, margin


def clearinghouse_state(
    fills: Iterable[Any],
    funding: Iterable[Any],
    dex: str,
    now_ms: int,
    ledger_usdc: Decimal = ZERO,
) -> dict[str, Any]:
    """The `clearinghouseState` answer of one dex ("" the default); `ledger_usdc` is what
    the wallet's ledger updates moved into the default dex's collateral (hlsim.ledger)."""
    book = _replay(fills, funding).get(dex, _Dex())
    positions: list[dict[str, Any]] = []
    unrealized = margin = notional = ZERO
    for name in sorted(book.coins):
        pos = book.coins[name]
        if pos.szi == 0:
            continue
        entry, upnl, used = _position(BY_NAME[name], pos)
        positions.append(entry)
        unrealized += upnl
        margin += used
        notional += abs(pos.szi) * BY_NAME[name].price
    start = START_COLLATERAL.get(dex, ZERO) if book.traded else ZERO
    start = ledger_usdc if dex == "" else start
    raw_usd = start + book.closed - book.fees + book.funding
    value = raw_usd + unrealized
    summary = {
        "accountValue": fmt(value),
        "totalNtlPos": fmt(notional),
        "totalRawUsd": fmt(raw_usd),
        "totalMarginUsed": fmt(margin),
    }
    return {
        "marginSummary": summary,
        "crossMarginSummary": dict(summary),
        "crossMaintenanceMarginUsed": fmt(margin / 2),
        "withdrawable": fmt(max(ZERO, value - margin)),
        "assetPositions": positions,
        "time": now_ms,
    }


def spot_clearinghouse_state(
    fills: Iterable[Any], ledger_moves: dict[str, Decimal] | None = None
) -> dict[str, Any]:
    """The `spotClearinghouseState` answer: every token with a balance, by name;
    `ledger_moves` are the ledger updates' changes by token (hlsim.ledger)."""
    total: dict[str, Decimal] = dict(START_SPOT)
    for token, moved in (ledger_moves or {}).items():
        total[token] = total.get(token, ZERO) + moved
    cost: dict[str, Decimal] = {}
    for raw in fills:
        coin = BY_NAME.get(str(raw.get("coin"))) if isinstance(raw, dict) else None
        if coin is None or not coin.spot:
            continue
        sz, px, fee = (_decimal(raw, k) for k in ("sz", "px", "fee"))
        if sz is None or px is None or fee is None:
            continue
        held = total.get(coin.base, ZERO)
        if raw.get("side") == "B":
            cost[coin.base] = cost.get(coin.base, ZERO) + px * sz
            total[coin.base] = held + sz - (fee if raw.get("feeToken") == coin.base else ZERO)
            total[coin.quote] = total.get(coin.quote, ZERO) - px * sz
        else:
            if held > 0:
                cost[coin.base] = cost.get(coin.base, ZERO) * max(ZERO, held - sz) / held
            # A sweep may sell past the balance (the trader clamps its position at 0).
            total[coin.base] = max(ZERO, held - sz)
            total[coin.quote] = total.get(coin.quote, ZERO) + px * sz - fee
    balances = [
        {
            "coin": token,
            "token": TOKEN_INDEX[token],
            "total": fmt(amount, 8),
            "hold": "0.0",
            "entryNtl": fmt(cost.get(token, ZERO)),
        }
        for token, amount in sorted(total.items())
        if amount != 0 and token in TOKEN_INDEX
    ]
    return {"balances": balances}
