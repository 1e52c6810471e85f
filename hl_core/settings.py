"""Settings, declared as data and read from the environment once at start-up.

Every setting is one `Setting` row (name, default, help, parser). The README's
table of environment variables is checked against `SETTINGS` by a test, so the
documentation cannot drift from the code. A bad value raises `SettingsError`
naming the variable and what is allowed; the CLI prints it as one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hl_core.errors import SettingsError


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        expected = f"a URL starting with {' or '.join(s + '://' for s in schemes)}"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 -- a port that is no number raises only when read
        except ValueError:  # urlsplit's own message ("Invalid IPv6 URL") names no rule
            raise ValueError(f"{expected} (this one does not parse)") from None
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError(expected)
        return value.rstrip("/") if parts.scheme.startswith("http") else value

    return parse


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("a positive number, e.g. 1 or 0.5") from None
    if not (number > 0 and number < float("inf")):
        raise ValueError("a positive number, e.g. 1 or 0.5")
    return number


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("a non-empty string")
    return value


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("one of 1/0, true/false, yes/no, on/off")


# Counted at par as US dollars (Hyperliquid's USD stablecoins); anything else is unpriced.
DEFAULT_USD_TOKENS = ("USDC", "USDH", "USDT0", "USDE")
DEFAULT_MAX_WALLETS_PER_ORG = 100_000
_TOKEN = re.compile(r"^[A-Za-z0-9]{1,20}$")
_DEX = re.compile(r"^[a-z0-9]{1,20}$")


def _tokens(value: str) -> tuple[str, ...]:
    tokens = tuple(t.strip() for t in value.split(",") if t.strip())
    if not tokens or not all(_TOKEN.match(t) for t in tokens):
        raise ValueError("a comma-separated list of token names, e.g. USDC,USDH")
    return tokens


def _dexes(value: str) -> tuple[str, ...]:
    if value.strip().lower() == "all":
        return ("all",)
    dexes = tuple(d.strip() for d in value.split(",") if d.strip())
    if not all(_DEX.match(d) for d in dexes):
        raise ValueError("empty, `all`, or a comma-separated list of perp dex names, e.g. xyz")
    return dexes


def _roles(value: str) -> tuple[str, ...]:
    roles = tuple(part.strip() for part in value.split(","))
    if not roles or not all(roles) or any(not r.isprintable() or " " in r for r in roles):
        raise ValueError("role names separated by commas, e.g. authenticated")
    return roles


def _positive_int(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError("a positive whole number, e.g. 67108864") from None
    if number <= 0:
        raise ValueError("a positive whole number, e.g. 67108864")
    return number


def _log_level(value: str) -> str:
    upper = value.strip().upper()
    if upper not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
    return upper


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    parse: Callable[[str], Any]

    @property
    def attr(self) -> str:
        return self.name.lower()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        None,
        "PostgreSQL connection URL. Unset: an embedded PostgreSQL in HL_ANALYTICS_DATA_DIR.",
        _url(("postgresql", "postgres")),
    ),
    Setting(
        "HL_ANALYTICS_DATA_DIR",
        ".hl-analytics",
        "Folder of the embedded PostgreSQL's data (used only when DATABASE_URL is unset).",
        _text,
    ),
    Setting(
        "HYPERLIQUID_API_URL",
        "https://api.hyperliquid.xyz",
        "Base URL of Hyperliquid's API (or of the simulated exchange).",
        _url(("http", "https")),
    ),
    Setting(
        "HYPERLIQUID_RPS",
        "1",
        "Requests per second to Hyperliquid, shared by all worker processes and hosts.",
        _positive_float,
    ),
    Setting(
        "HYPERLIQUID_USD_TOKENS",
        ",".join(DEFAULT_USD_TOKENS),
        "Tokens counted at par as US dollars; amounts in any other token are unpriced. "
        "After changing it, run `hl-analytics rebuild`.",
        _tokens,
    ),
    Setting(
        "HYPERLIQUID_DEXES",
        None,
        "Builder-deployed perp dexes to also ask for fills one by one (20 weight more per "
        "dex and poll): empty (only the documented request), a list such as `xyz,abc`, "
        "or `all` (every dex `perpDexs` lists).",
        _dexes,
    ),
    Setting(
        "NODE_STALE_AFTER_S",
        "60",
        "Seconds without the node source advancing after which the scheduler polls every "
        "tracked wallet's fills through the API again.",
        _positive_float,
    ),
    Setting("JWT_SECRET", None, "Shared secret for HS256 tokens.", _text),
    Setting("JWT_JWKS_URL", None, "JWKS URL for RS256/ES256 tokens.", _url(("http", "https"))),
    Setting("JWT_AUDIENCE", "authenticated", "Required `aud` claim of tokens.", _text),
    Setting("JWT_ISSUER", None, "Required `iss` claim of tokens, when set.", _text),
    Setting(
        "JWT_ROLES",
        "authenticated",
        "Comma-separated `role` claims a token may carry; `hl-analytics token` signs the first.",
        _roles,
    ),
    Setting(
        "REDIS_URL",
        None,
        "Redis URL for the shared response cache (optional).",
        _url(("redis", "rediss")),
    ),
    Setting("GRAPHIQL", "1", "Serve GraphiQL and allow introspection (1) or not (0).", _flag),
    Setting("LOG_LEVEL", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR.", _log_level),
    Setting(
        "HL_ANALYTICS_HEALTH_STALL_S",
        "30",
        "Seconds the API's pool may be unable to hand out a connection before /healthz fails.",
        _positive_float,
    ),
    Setting(
        "HL_ANALYTICS_CACHE_MAX_BYTES",
        "67108864",
        "Bytes of answers the in-memory response cache holds at most (least recently used go).",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_CACHE_COALESCE_S",
        "2",
        "Seconds over which an org's change notifications are gathered into one cache "
        "invalidation (the first after a quiet spell applies at once); answers are stale "
        "at most this long plus the notification's delay.",
        _positive_float,
    ),
    Setting(
        "HL_ANALYTICS_CALLER_RPS",
        "10",
        "API requests per second one caller (a token's `sub`) may send, sustained; "
        "above it and its burst: 429 with Retry-After.",
        _positive_float,
    ),
    Setting(
        "HL_ANALYTICS_CALLER_BURST",
        "40",
        "API requests one caller may send at once above HL_ANALYTICS_CALLER_RPS (a page load).",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_ORG_RPS",
        "40",
        "API requests per second all callers of one org may send together, sustained.",
        _positive_float,
    ),
    Setting(
        "HL_ANALYTICS_ORG_BURST",
        "120",
        "API requests all callers of one org may send at once above HL_ANALYTICS_ORG_RPS.",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_CALLER_CONCURRENCY",
        "4",
        "Requests of one caller that may use the database at the same time (cache hits "
        "do not count); one more: 429.",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_ORG_CONCURRENCY",
        "6",
        "Requests of one org that may use the database at the same time; one more: 429.",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_CALLER_COST_PER_S",
        "400",
        "Cost (README: cost of a document) of the documents one caller may have run per "
        "second, sustained; cache hits cost nothing. Beyond it and its burst: 429.",
        _positive_float,
    ),
    Setting(
        "HL_ANALYTICS_CALLER_COST_BURST",
        "4800",
        "Cost one caller may have run at once above HL_ANALYTICS_CALLER_COST_PER_S "
        "(never less than HL_ANALYTICS_COST_BUDGET).",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_COST_BUDGET",
        "2400",
        "Most a GraphQL document may cost (README: cost of a document); above it: 400.",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_MAX_WALLETS_PER_ORG",
        str(DEFAULT_MAX_WALLETS_PER_ORG),
        "Most wallets one org may track; tracking more is refused with an error naming it.",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_WS_MAX_PER_USER",
        "5",
        "Subscription websockets one user (token `sub`) may hold open on one API instance.",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_WS_MAX_CONNECTIONS",
        "1000",
        "Subscription websockets one API instance holds open at most, all users together.",
        _positive_int,
    ),
    Setting(
        "HL_ANALYTICS_WS_QUEUE",
        "16",
        "Events a subscription may have waiting to be sent; a client that falls further "
        "behind is disconnected (close code 4008).",
        _positive_int,
    ),
)


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    hl_analytics_data_dir: str
    hyperliquid_api_url: str
    hyperliquid_rps: float
    hyperliquid_usd_tokens: tuple[str, ...]
    hyperliquid_dexes: tuple[str, ...] | None
    node_stale_after_s: float
    jwt_secret: str | None
    jwt_jwks_url: str | None
    jwt_audience: str
    jwt_issuer: str | None
    jwt_roles: tuple[str, ...]
    redis_url: str | None
    graphiql: bool
    log_level: str
    hl_analytics_health_stall_s: float
    hl_analytics_cache_max_bytes: int
    hl_analytics_cache_coalesce_s: float
    hl_analytics_caller_rps: float
    hl_analytics_caller_burst: int
    hl_analytics_org_rps: float
    hl_analytics_org_burst: int
    hl_analytics_caller_concurrency: int
    hl_analytics_org_concurrency: int
    hl_analytics_caller_cost_per_s: float
    hl_analytics_caller_cost_burst: int
    hl_analytics_cost_budget: int
    hl_analytics_max_wallets_per_org: int
    hl_analytics_ws_max_per_user: int
    hl_analytics_ws_max_connections: int
    hl_analytics_ws_queue: int

    @property
    def data_dir(self) -> Path:
        return Path(self.hl_analytics_data_dir).expanduser().resolve()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.name)
            if raw is None or raw == "":
                raw = setting.default
            if raw is None:
                values[setting.attr] = None
                continue
            try:
                values[setting.attr] = setting.parse(raw)
            except ValueError as exc:
                raise SettingsError(
                    f"{setting.name}={raw!r} is not allowed: expected {exc}"
                ) from None
        return cls(**values)
