"""The data of the tenant-isolation scenario, and every answer it implies.

Five orgs (one empty) share wallets (W3 is tracked by three orgs, W9 never
trades); each wallet's fills mix days inside and outside each range, spot and
perp coins, fees in USDC and in the base token, rebates, and a self-trade. The
expected answers are computed here from the fills alone, by the README's domain
rules, independently of the SQL that rolls them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from storage.fills import Fill, day_bounds_ms
from storage.markets import Resolution
from tests.factories import address, fill

WALLETS = {n: address(0x5000 + n) for n in range(1, 10)}
ORG_WALLETS = {
    "alpha": (1, 2, 3),
    "beta": (3, 4, 5),
    "gamma": (5, 6, 1),
    "delta": (7, 8, 3, 9),  # W9 never trades
    "empty": (),
}
DAYS_AGO = (0, 1, 2, 5, 12, 35, 95)
COINS = ("BTC", "@107", "PURR/USDC", "xyz:TSLA")
# coin → its base token; all of them are quoted in USDC (the seed resolves them so).
BASES = {"BTC": "BTC", "@107": "HYPE", "PURR/USDC": "PURR", "xyz:TSLA": "xyz:TSLA"}
MARKETS = [
    Resolution(coin, base, "USDC", "HYPE/USDC" if coin == "@107" else coin)
    for coin, base in BASES.items()
]
RANGES = {"D7": 7, "D30": 30, "D90": 90}
ORDERS = ("VOLUME", "TRADES", "PNL", "FEES")


def users() -> dict[str, str]:
    """user id → org name: an admin and a viewer per org."""
    return {f"{org}-{role}": org for org in ORG_WALLETS for role in ("admin", "viewer")}


def wallet_fills(n: int, today: date, extra: int = 0) -> list[Fill]:
    """Wallet n's fills: a deterministic mix over DAYS_AGO (W3 and W7/W8 not today)."""
    out: list[Fill] = []
    for ago in DAYS_AGO:
        if (n + ago) % 3 == 0 or (n >= 7 and ago == 0) or n == 9:
            continue
        start, _ = day_bounds_ms(today - timedelta(days=ago))
        count = 1 + (n * 7 + ago) % 4 + extra
        for i in range(count):
            coin = COINS[(n + i + ago) % len(COINS)]
            spot = coin.startswith("@") or "/" in coin
            side = "B" if (n + i) % 2 == 0 else "A"
            px = Decimal(f"{10 + n}.{ago % 10}{i % 10}")
            tid = n * 1_000_000 + ago * 1000 + i + extra * 100
            out.append(
                fill(
                    start + 3_600_000 + n * 1000 + i * 60_000 + extra,
                    # fills 0 and 1 share a tid: a self-trade, two fills
                    tid=tid - 1 if i == 1 else tid,
                    oid=tid + 7,
                    coin=coin,
                    side=side,
                    px=px,
                    sz=Decimal(f"0.{n}{i + 1}"),
                    fee=Decimal(f"{'-' if i == 2 else ''}0.0{n}{i % 10}"),
                    # a spot buy pays its fee in the base token it receives
                    fee_token=(BASES[coin] if spot and side == "B" else "USDC"),
                    closed_pnl=Decimal(f"{(n - 4) * (i + 1)}.{ago % 10}"),
                )
            )
    return out


@dataclass
class Day:
    trades: int = 0
    spot: Decimal = Decimal(0)
    perp: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    pnl: Decimal = Decimal(0)

    def add(self, f: Fill) -> None:
        volume = f.px * f.sz
        self.trades += 1
        if f.coin.startswith("@") or "/" in f.coin:
            self.spot += volume
        else:
            self.perp += volume
        self.fees += f.fee if f.fee_token == "USDC" else f.fee * f.px
        self.pnl += f.closed_pnl

    @property
    def total(self) -> Decimal:
        return self.spot + self.perp


@dataclass
class World:
    """The fills of every wallet, and every answer they imply for each org."""

    today: date
    fills: dict[int, list[Fill]] = field(default_factory=dict)
    # Answers computed once per world: checking 2000 responses must not be the bottleneck.
    answers: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    def wallet_days(self, n: int) -> dict[date, Day]:
        days: dict[date, Day] = {}
        for f in self.fills.get(n, []):
            day = datetime.fromtimestamp(f.time / 1000, UTC).date()
            days.setdefault(day, Day()).add(f)
        return days

    def answer(self, org: str, key: tuple[str, ...]) -> Any:
        """The expected `data` of a request, money as Decimals."""
        if (org, *key) not in self.answers:
            self.answers[(org, *key)] = numbers(expected(self, org, key))
        return self.answers[(org, *key)]

    def in_range(self, range_name: str) -> list[date]:
        return [self.today - timedelta(days=k) for k in range(RANGES[range_name] - 1, -1, -1)]

    def day_metrics(self, org: str, day: date) -> dict[str, Any]:
        active = [self.wallet_days(n)[day] for n in ORG_WALLETS[org] if day in self.wallet_days(n)]
        total = sum((d.total for d in active), Decimal(0))
        avg = (total / len(active)).quantize(Decimal("0.01"), ROUND_HALF_EVEN) if active else 0
        return {
            "day": day.isoformat(),
            "dau": len(active),
            "tradeCount": sum(d.trades for d in active),
            "spotVolumeUsd": sum((d.spot for d in active), Decimal(0)),
            "perpVolumeUsd": sum((d.perp for d in active), Decimal(0)),
            "totalVolumeUsd": total,
            "feesUsd": sum((d.fees for d in active), Decimal(0)),
            "realizedPnlUsd": sum((d.pnl for d in active), Decimal(0)),
            "avgVolumePerUser": Decimal(avg),
        }

    def summary(self, org: str) -> dict[str, Any]:
        days = {d for n in ORG_WALLETS[org] for d in self.wallet_days(n)}
        latest = max(days) if days else None
        return {
            "dashboardSummary": {
                "day": latest.isoformat() if latest else None,
                "latest": self.day_metrics(org, latest) if latest else None,
                "previous": self.day_metrics(org, latest - timedelta(days=1)) if latest else None,
                "trackedWallets": len(ORG_WALLETS[org]),
            }
        }

    def global_metrics(self, org: str, range_name: str) -> dict[str, Any]:
        return {"globalMetrics": [self.day_metrics(org, d) for d in self.in_range(range_name)]}

    def totals(self, n: int, range_name: str) -> dict[str, Any] | None:
        span = set(self.in_range(range_name))
        days = {d: m for d, m in self.wallet_days(n).items() if d in span}
        if not days:
            return None
        return {
            "address": WALLETS[n],
            "tradeCount": sum(m.trades for m in days.values()),
            "spotVolumeUsd": sum((m.spot for m in days.values()), Decimal(0)),
            "perpVolumeUsd": sum((m.perp for m in days.values()), Decimal(0)),
            "totalVolumeUsd": sum((m.total for m in days.values()), Decimal(0)),
            "feesUsd": sum((m.fees for m in days.values()), Decimal(0)),
            "realizedPnlUsd": sum((m.pnl for m in days.values()), Decimal(0)),
            "activeDays": len(days),
        }

    def top_wallets(self, org: str, range_name: str, order: str) -> dict[str, Any]:
        key = {
            "VOLUME": "totalVolumeUsd",
            "TRADES": "tradeCount",
            "PNL": "realizedPnlUsd",
            "FEES": "feesUsd",
        }[order]
        rows = [t for n in ORG_WALLETS[org] if (t := self.totals(n, range_name)) is not None]
        rows.sort(key=lambda r: r["address"])
        rows.sort(key=lambda r: r[key], reverse=True)
        return {"topWallets": [{"rank": i + 1, **r} for i, r in enumerate(rows)]}

    def wallet(self, org: str, n: int) -> dict[str, Any]:
        if n not in ORG_WALLETS[org]:
            return {"wallet": None}
        totals = self.totals(n, "D30") or dict.fromkeys(TOTALS_FIELDS, 0)
        return {"wallet": {"address": WALLETS[n], "totals": {k: totals[k] for k in TOTALS_FIELDS}}}

    def plus(self, batches: dict[int, list[Fill]]) -> World:
        """This world with more fills."""
        fills = {n: list(f) for n, f in self.fills.items()}
        for n, batch in batches.items():
            fills.setdefault(n, []).extend(batch)
        return World(self.today, fills)


TOTALS_FIELDS = ("tradeCount", "totalVolumeUsd", "feesUsd", "realizedPnlUsd", "activeDays")
DAY_FIELDS = (
    "day dau tradeCount spotVolumeUsd perpVolumeUsd totalVolumeUsd feesUsd realizedPnlUsd "
    "avgVolumePerUser"
)
RANK_FIELDS = (
    "rank address tradeCount spotVolumeUsd perpVolumeUsd totalVolumeUsd feesUsd "
    "realizedPnlUsd activeDays"
)
SUMMARY = (
    f"{{ dashboardSummary {{ day latest {{ {DAY_FIELDS} }} previous {{ {DAY_FIELDS} }} "
    "trackedWallets } }"
)
GLOBAL = f"query ($r: MetricsRange!) {{ globalMetrics(range: $r) {{ {DAY_FIELDS} }} }}"
TOP = (
    "query ($r: MetricsRange!, $o: WalletOrder!) "
    f"{{ topWallets(range: $r, orderBy: $o, limit: 100) {{ {RANK_FIELDS} }} }}"
)
WALLET = (
    "query ($a: String!) { wallet(address: $a) "
    f"{{ address totals {{ {' '.join(TOTALS_FIELDS)} }} }} }}"
)


@dataclass(frozen=True)
class Ask:
    """One request: who asks, what, and the key of its expected answer."""

    user: str
    query: str
    variables: dict[str, str] | None
    expect: tuple[str, ...]


def asks() -> list[Ask]:
    out: list[Ask] = []
    for user in users():
        out.append(Ask(user, SUMMARY, None, ("summary",)))
        for r in RANGES:
            out.append(Ask(user, GLOBAL, {"r": r}, ("global", r)))
        for r in ("D7", "D90"):
            for o in ORDERS:
                out.append(Ask(user, TOP, {"r": r, "o": o}, ("top", r, o)))
        for n, wallet in WALLETS.items():
            out.append(Ask(user, WALLET, {"a": wallet}, ("wallet", str(n))))
    return out


def expected(world: World, org: str, key: tuple[str, ...]) -> dict[str, Any]:
    kind = key[0]
    if kind == "summary":
        return world.summary(org)
    if kind == "global":
        return world.global_metrics(org, key[1])
    if kind == "top":
        return world.top_wallets(org, key[1], key[2])
    return world.wallet(org, int(key[1]))


def numbers(value: Any, name: str = "") -> Any:
    """The answer with every money field as a Decimal, so 1.50 equals 1.5."""
    if isinstance(value, dict):
        return {k: numbers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    if (name.endswith("Usd") or name == "avgVolumePerUser") and value is not None:
        return Decimal(value)
    return value
