"""The README's command reference against the real parser: one test per command, so a
missing row or help text names its command and does not hide the others."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str | None, bool]]:
    """(words, help text, is a leaf) for every command below ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                words = (*prefix, name)
                below = list(_subcommands(sub, words))
                yield words, helps.get(name), not below
                yield from below


COMMANDS = list(_subcommands(build_parser()))
LEAVES = [words for words, _help, leaf in COMMANDS if leaf]


def _id(words: tuple[str, ...]) -> str:
    return " ".join(words)


def test_the_parser_offers_the_commands_the_readme_describes() -> None:
    # a guard for the parametrised tests below: an empty discovery would pass them all
    assert len(LEAVES) >= 10 and ("sale",) in LEAVES and ("hw", "print-receipt") in LEAVES


def in_readme(words: tuple[str, ...], readme: str) -> bool:
    """Whether the README names ``tillbox WORDS``; a `shift open|close` row covers each."""
    return f"tillbox {' '.join(words)}" in readme or (
        f"tillbox {' '.join(words[:-1])} " in readme and words[-1] in readme
    )


def test_in_readme_needs_the_whole_command() -> None:
    readme = "| `tillbox edge broker add-device\\|add-worker` | ... |"
    assert in_readme(("edge", "broker", "add-worker"), readme)
    assert not in_readme(("edge", "broker", "init"), readme)
    assert not in_readme(("edge", "serve"), readme)


@pytest.mark.parametrize("words", LEAVES, ids=_id)
def test_command_is_in_the_readme(words: tuple[str, ...]) -> None:
    assert in_readme(words, README), f"README command reference lacks `tillbox {_id(words)}`"


@pytest.mark.parametrize(
    "words, help_text", [(words, text) for words, text, _leaf in COMMANDS], ids=_id
)
def test_command_has_help(words: tuple[str, ...], help_text: str | None) -> None:
    assert help_text and help_text.strip(), f"`tillbox {_id(words)}` has no help text"
