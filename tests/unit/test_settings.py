"""Settings: parsed from the environment, every one documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from hl_core.errors import SettingsError
from hl_core.settings import SETTINGS, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.hyperliquid_api_url == "https://api.hyperliquid.xyz"
    assert settings.hyperliquid_rps == 1.0
    assert settings.jwt_audience == "authenticated"
    assert settings.redis_url is None


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {"HYPERLIQUID_RPS": "2.5", "HYPERLIQUID_API_URL": "http://127.0.0.1:9/", "GRAPHIQL": "off"}
    )
    assert settings.hyperliquid_rps == 2.5
    assert settings.hyperliquid_api_url == "http://127.0.0.1:9"
    assert settings.graphiql is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HYPERLIQUID_RPS", "0"),
        ("HYPERLIQUID_RPS", "inf"),
        ("REDIS_URL", "http://x"),
        ("GRAPHIQL", "maybe"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}="):
        Settings.from_env({name: value})


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgresql://u@[::1/x"),  # urlsplit: "Invalid IPv6 URL"
        ("DATABASE_URL", "postgresql://u@host:port/x"),
        ("REDIS_URL", "redis://[x"),
        ("HYPERLIQUID_API_URL", "http://h:99999"),
    ],
)
def test_an_unparsable_url_says_what_is_allowed(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}=.* expected a URL starting with"):
        Settings.from_env({name: value})
