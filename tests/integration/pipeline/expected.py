"""An independent computation of the domain rules' metrics in Python, with Decimal.

Written from the domain rules, not from the SQL, so that the tests compare two
implementations of the same definitions.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg

from hlsim.coins import BY_NAME
from hlsim.server import SimServer
from storage import fills, markets, orgs, rollups
from storage.fills import Fill
from storage.markets import Resolution

ZERO = Decimal(0)
# The rules as written, spelled out here again on purpose (not imported from the code).
USD = frozenset({"USDC", "USDH", "USDT0", "USDE"})
SYSTEM = frozenset(
    {
        "Spot Dust Conversion",
        "Net Child Vaults",
        "Settlement",
        "Split Outcome",
        "Merge Outcome",
        "Merge Question",
        "Negate Outcome",
    }
)


def utc_day(time_ms: int) -> date:
    return datetime.fromtimestamp(time_ms / 1000, UTC).date()


def kind(coin: str) -> str:
    if coin.startswith("@") or "/" in coin:
        return "spot"
    return "outcome" if coin.startswith("#") else "perp"


# Coins of Hyperliquid's docs examples that tests plant by hand (mainnet's HYPE/USDC).
DOC_EXAMPLES = {"@107": ("HYPE", "USDC")}


def base_and_quote(coin: str) -> tuple[str | None, str | None]:
    """What the simulated exchange (or the docs) list the coin as; unknown: no quote."""
    listed = BY_NAME.get(coin)
    if listed is not None:
        return listed.base, listed.quote
    if coin in DOC_EXAMPLES:
        return DOC_EXAMPLES[coin]
    if kind(coin) == "outcome":
        return "+" + coin[1:], "USDC"
    if kind(coin) == "perp" and ":" not in coin:
        return coin, "USDC"
    return None, None


@dataclass(frozen=True)
class Priced:
    """One fill's amounts in USD by the rules; None: it has no USD value."""

    volume: Decimal | None
    fee: Decimal | None
    pnl: Decimal | None


def price(
    coin: str, px: Decimal, sz: Decimal, fee: Decimal, fee_token: str, closed_pnl: Decimal
) -> Priced:
    base, quote = base_and_quote(coin)
    quote_usd = quote in USD
    if fee == 0:
        fee_value: Decimal | None = ZERO
    elif fee_token in USD:
        fee_value = fee
    elif fee_token == base and quote_usd:
        fee_value = fee * px
    else:
        fee_value = None
    return Priced(
        px * sz if quote_usd else None,
        fee_value,
        closed_pnl if quote_usd or closed_pnl == 0 else None,
    )


@dataclass
class Day:
    trade_count: int = 0
    spot: Decimal = ZERO
    perp: Decimal = ZERO
    outcome: Decimal = ZERO
    fees: Decimal = ZERO
    pnl: Decimal = ZERO
    unpriced: int = 0
    dau: int = 0
    funding: Decimal = ZERO
    deposits: Decimal = ZERO
    withdrawals: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.spot + self.perp + self.outcome

    @property
    def net_pnl(self) -> Decimal:
        """Realized PnL net of fees and funding: pnl - fees + funding."""
        return self.pnl - self.fees + self.funding

    @property
    def avg_per_user(self) -> Decimal:
        if not self.dau:
            return ZERO
        return (self.total / self.dau).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    def count(
        self,
        coin: str,
        direction: str,
        px: Decimal,
        sz: Decimal,
        fee: Decimal,
        fee_token: str,
        closed_pnl: Decimal,
    ) -> None:
        base, quote = base_and_quote(coin)
        quote_usd = quote in USD
        trade = direction not in SYSTEM
        if trade:
            self.trade_count += 1
        if quote_usd:
            if trade:
                market = kind(coin)
                if market == "spot":
                    self.spot += px * sz
                elif market == "perp":
                    self.perp += px * sz
                else:
                    self.outcome += px * sz
            self.pnl += closed_pnl
        fee_value: Decimal | None = None
        if fee == 0:
            fee_value = ZERO
        elif fee_token in USD:
            fee_value = fee
        elif fee_token == base and quote_usd:
            fee_value = fee * px
        if fee_value is not None:
            self.fees += fee_value
        if not quote_usd or fee_value is None:
            self.unpriced += 1


@dataclass
class CoinDay:
    """One wallet's fills of one coin on one day, by the rules (from `price`)."""

    trade_count: int = 0
    volume: Decimal = ZERO
    fees: Decimal = ZERO
    pnl: Decimal = ZERO
    unpriced: int = 0
    wallets: int = 0  # in an org's breakdown: wallets with >= 1 trade fill of the coin

    def count(
        self,
        coin: str,
        direction: str,
        px: Decimal,
        sz: Decimal,
        fee: Decimal,
        fee_token: str,
        closed_pnl: Decimal,
    ) -> None:
        priced = price(coin, px, sz, fee, fee_token, closed_pnl)
        if direction not in SYSTEM:
            self.trade_count += 1
            if priced.volume is not None:
                self.volume += priced.volume
        if priced.fee is not None:
            self.fees += priced.fee
        if priced.pnl is not None:
            self.pnl += priced.pnl
        if priced.volume is None or priced.fee is None:
            self.unpriced += 1


@dataclass
class Expected:
    wallet_days: dict[tuple[int, date], Day] = field(default_factory=dict)
    coin_days: dict[tuple[int, date, str], CoinDay] = field(default_factory=dict)

    def add(self, wallet_id: int, fills: Iterable[Fill]) -> None:
        for f in fills:
            values = (f.coin, f.dir, f.px, f.sz, f.fee, f.fee_token, f.closed_pnl)
            day = self.wallet_days.setdefault((wallet_id, utc_day(f.time)), Day())
            day.count(*values)
            coin = self.coin_days.setdefault((wallet_id, utc_day(f.time), f.coin), CoinDay())
            coin.count(*values)

    def coin_breakdown(
        self, wallet_ids: Iterable[int], first: date, last: date
    ) -> list[tuple[str, CoinDay]]:
        """An org's (or a wallet's) coins over first..last, ordered by volume descending,
        ties by coin."""
        members = set(wallet_ids)
        coins: dict[str, CoinDay] = defaultdict(CoinDay)
        traders: dict[str, set[int]] = defaultdict(set)
        for (wallet_id, day, coin), c in self.coin_days.items():
            if wallet_id not in members or not first <= day <= last:
                continue
            total = coins[coin]
            total.trade_count += c.trade_count
            total.volume += c.volume
            total.fees += c.fees
            total.pnl += c.pnl
            total.unpriced += c.unpriced
            if c.trade_count:
                traders[coin].add(wallet_id)
        for coin, total in coins.items():
            total.wallets = len(traders[coin])
        return sorted(coins.items(), key=lambda item: (-item[1].volume, item[0]))

    def org_days(self, wallet_ids: Iterable[int]) -> dict[date, Day]:
        members = set(wallet_ids)
        days: dict[date, Day] = defaultdict(Day)
        for (wallet_id, day), w in self.wallet_days.items():
            if wallet_id not in members:
                continue
            d = days[day]
            d.dau += 1 if w.trade_count else 0
            d.trade_count += w.trade_count
            d.spot += w.spot
            d.perp += w.perp
            d.outcome += w.outcome
            d.fees += w.fees
            d.pnl += w.pnl
            d.unpriced += w.unpriced
            d.funding += w.funding
            d.deposits += w.deposits
            d.withdrawals += w.withdrawals
        return dict(days)


def add_raw(expected: Expected, wallet_id: int, raws: Iterable[Mapping[str, object]]) -> None:
    """Adds raw API fills (JSON objects with decimal strings), as the exchange serves them."""
    for raw in raws:
        day = expected.wallet_days.setdefault((wallet_id, utc_day(int(str(raw["time"])))), Day())
        px, sz, fee, pnl = (Decimal(str(raw[k])) for k in ("px", "sz", "fee", "closedPnl"))
        values = (str(raw["coin"]), str(raw["dir"]), px, sz, fee, str(raw["feeToken"]), pnl)
        day.count(*values)
        key = (wallet_id, utc_day(int(str(raw["time"]))), str(raw["coin"]))
        expected.coin_days.setdefault(key, CoinDay()).count(*values)


def add_funding(expected: Expected, wallet_id: int, raws: Iterable[Mapping[str, Any]]) -> None:
    """Adds raw `userFunding` entries: a payment counts on its UTC day, at par when its
    perp's collateral is a USD stablecoin, else not at all. Entries that are not
    well-formed payments (planted malformed ones) are the quarantine's, not counted."""
    for raw in raws:
        delta = raw.get("delta") if isinstance(raw, dict) else None
        if not isinstance(delta, dict) or not isinstance(raw.get("time"), int):
            continue
        try:
            Decimal(str(delta["usdc"])), Decimal(str(delta["szi"]))
        except (KeyError, ArithmeticError):
            continue
        _, quote = base_and_quote(str(delta["coin"]))
        day = expected.wallet_days.setdefault((wallet_id, utc_day(int(raw["time"]))), Day())
        if quote in USD:
            day.funding += Decimal(str(delta["usdc"]))


@dataclass(frozen=True)
class Account:
    """A wallet's account by the rules, from the exchange's raw answers."""

    value: Decimal
    unrealized: Decimal
    positions: dict[str, Mapping[str, Any]]  # coin -> raw position
    dex_of: dict[str, str]  # coin -> dex


def expected_account(server: SimServer, address: str) -> Account:
    """Account value = the `accountValue` of every perp dex the wallet traded whose
    collateral is a USD stablecoin + its spot balances in USD stablecoins; unrealized
    PnL = those dexes' positions' `unrealizedPnl`. Other balances: not counted."""
    market = server.market
    dexes = {""} | {
        str(f["coin"]).split(":")[0]
        for f in market.fills(address)
        if isinstance(f, dict) and ":" in str(f.get("coin"))
    }
    value = unrealized = ZERO
    positions: dict[str, Mapping[str, Any]] = {}
    dex_of: dict[str, str] = {}
    for dex in sorted(dexes):
        state = market.clearinghouse_state(address, dex)
        coins = [c for c in BY_NAME.values() if c.perp and (c.dex or "") == dex]
        collateral = "USDC" if dex == "" else coins[0].quote
        held = [p["position"] for p in state["assetPositions"]]
        for pos in held:
            positions[pos["coin"]] = pos
            dex_of[pos["coin"]] = dex
        if collateral in USD:
            value += Decimal(state["marginSummary"]["accountValue"])
            unrealized += sum((Decimal(p["unrealizedPnl"]) for p in held), ZERO)
    for balance in market.spot_clearinghouse_state(address)["balances"]:
        if balance["coin"] in USD:
            value += Decimal(balance["total"])
    return Account(value, unrealized, positions, dex_of)


def ledger_class(delta: Mapping[str, Any], wallet: str) -> tuple[str, Decimal]:
    """The README's table of ledger update types, again: ("deposit" | "withdrawal" |
    "other", USDC amount)."""
    kind = delta["type"]
    if kind == "deposit":
        return "deposit", Decimal(delta["usdc"])
    if kind == "withdraw":
        return "withdrawal", Decimal(delta["usdc"]) + Decimal(delta["fee"])
    if kind in ("internalTransfer", "send", "spotTransfer"):
        amount = Decimal(delta["usdc"] if kind == "internalTransfer" else delta["usdcValue"])
        sender, receiver = str(delta["user"]).lower(), str(delta["destination"]).lower()
        if sender == receiver:
            return "other", ZERO
        if receiver == wallet:
            return "deposit", amount
        return "withdrawal", amount + Decimal(delta.get("fee") or 0)
    return "other", ZERO


def add_ledger(
    expected: Expected, wallet_id: int, wallet: str, raws: Iterable[Mapping[str, Any]]
) -> None:
    """Adds raw ledger updates: deposits and withdrawals count on their UTC day, in
    USDC at par; a day with only other updates has no row."""
    for raw in raws:
        try:
            cls, amount = ledger_class(raw["delta"], wallet.lower())
        except (KeyError, TypeError, ArithmeticError):
            continue  # malformed: the quarantine's, not counted
        if cls == "other":
            continue
        day = expected.wallet_days.setdefault((wallet_id, utc_day(int(raw["time"]))), Day())
        if cls == "deposit":
            day.deposits += amount
        else:
            day.withdrawals += amount


def store(conn: psycopg.Connection, wallet_id: int, batch: Iterable[Fill]) -> None:
    """Stores fills as an ingest would, their coins resolved as metadata would resolve them."""
    fills.insert_fills(conn, wallet_id, list(batch))
    resolve_planted(conn)


def resolve_planted(conn: psycopg.Connection) -> None:
    """Resolves the recorded coins from the listings above, as the workers do from
    Hyperliquid's metadata (for tests that store fills without a worker)."""
    coins = [r[0] for r in conn.execute("SELECT coin FROM hl_markets WHERE resolved_at IS NULL")]
    resolutions = []
    for coin in coins:
        base, quote = base_and_quote(coin)
        if quote is not None:
            resolutions.append(Resolution(coin, base, quote, coin))
    markets.resolve(conn, resolutions)


def raw_identity(raw: Mapping[str, Any]) -> tuple[object, ...]:
    """A raw fill's identity, as the rules define it: (tid, oid, time, coin)."""
    return (raw["tid"], raw["oid"], raw["time"], raw["coin"])


def by_wallet(fills: Mapping[int, Iterable[Fill]]) -> Expected:
    expected = Expected()
    for wallet_id, wallet_fills in fills.items():
        expected.add(wallet_id, wallet_fills)
    return expected


# The org-day metrics as stored, in the order `expected_rows` gives them.
METRICS = (
    "SELECT org_id, day, dau, trade_count, spot_volume_usd, perp_volume_usd, outcome_volume_usd,"
    " total_volume_usd, fees_usd, realized_pnl_usd, avg_volume_per_user, unpriced_fills,"
    " funding_usd, deposits_usd, withdrawals_usd FROM global_day_metrics ORDER BY 1, 2"
)


def expected_rows(
    conn: psycopg.Connection,
    server: SimServer,
    members: dict[str, list[str]],
    *,
    valid: Callable[[dict[str, Any]], bool] = lambda raw: True,
) -> list[tuple[object, ...]]:
    """METRICS as the independent computation gives them from the exchange's ground truth."""
    expected = Expected()
    ids = {w.address: w.id for w in orgs.upsert_wallets(conn, server.market.wallets)}
    for address, wallet_id in ids.items():
        unique = {raw_identity(f): f for f in server.market.fills(address) if valid(f)}
        add_raw(expected, wallet_id, unique.values())
        add_funding(expected, wallet_id, server.market.funding(address))
        add_ledger(expected, wallet_id, address, server.market.ledger(address))
    rows = []
    for org_id, tracked in members.items():
        for day, d in expected.org_days([ids[a] for a in tracked]).items():
            rows.append(
                (
                    uuid.UUID(org_id),
                    day,
                    d.dau,
                    d.trade_count,
                    d.spot,
                    d.perp,
                    d.outcome,
                    d.total,
                    d.fees,
                    d.pnl,
                    d.avg_per_user,
                    d.unpriced,
                    d.funding,
                    d.deposits,
                    d.withdrawals,
                )
            )
    return sorted(rows, key=lambda r: (str(r[0]), r[1]))


def assert_org_days(conn: psycopg.Connection, org_id: uuid.UUID, want: Mapping[date, Day]) -> None:
    """The org's stored org-days are exactly `want`, every figure compared exactly."""
    got = {d.day: d for d in rollups.org_days(conn, org_id)}
    assert set(got) == set(want)
    for day, exp in want.items():
        g = got[day]
        assert (g.dau, g.trade_count, g.spot_volume_usd, g.perp_volume_usd) == (
            exp.dau,
            exp.trade_count,
            exp.spot,
            exp.perp,
        ), day
        assert (g.outcome_volume_usd, g.unpriced_fills) == (exp.outcome, exp.unpriced), day
        assert (g.total_volume_usd, g.fees_usd, g.realized_pnl_usd, g.avg_volume_per_user) == (
            exp.total,
            exp.fees,
            exp.pnl,
            exp.avg_per_user,
        ), day
        assert g.funding_usd == exp.funding, day
        assert (g.deposits_usd, g.withdrawals_usd) == (exp.deposits, exp.withdrawals), day
