"""Every option of every command says what it does, and every command's help ends
with an example (issue 15, item 9)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from hl_analytics.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, name: str = "hl-analytics"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    return list(_parsers(build_parser()))


def test_the_walk_finds_nested_commands() -> None:
    names = {name for name, _ in _commands()}
    assert {"hl-analytics demo", "hl-analytics wallets track", "hl-analytics api"} <= names


def test_every_argument_has_help() -> None:
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in _commands()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and not (action.help or "").strip()
    ]
    assert missing == []


def test_every_option_with_a_default_shows_it() -> None:
    silent = [
        f"{name} {action.option_strings}"
        for name, parser in _commands()
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction)
        and "default" not in (action.help or "")
        and not action.required
    ]
    assert silent == []


def test_every_command_has_an_example() -> None:
    missing = [name for name, parser in _commands() if "example" not in (parser.epilog or "")]
    assert missing == []


def test_examples_keep_their_lines() -> None:
    for name, parser in _commands():
        assert parser.format_help().rstrip().splitlines()[-1].startswith("  hl-analytics "), name
