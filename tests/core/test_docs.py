"""The README's command reference against the real parser: one test per command, so a
missing row or help text names its command and does not hide the others. And the
architecture as documented against the tree: the README's layout table names every
folder, docs/architecture.md names only files that exist and the contracts as built."""

from __future__ import annotations

import argparse
import fnmatch
import re
import tomllib
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


# -- the layout table and docs/architecture.md against the tree ------------------------------
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "importlinter"
]


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {title}'"
    return match.group(1)


def _ignored(name: str) -> bool:
    """Whether .gitignore keeps the top-level folder ``name`` out of the tree."""
    for line in (ROOT / ".gitignore").read_text().splitlines():
        pattern = line.strip().strip("/")
        if pattern and not line.startswith("#") and fnmatch.fnmatch(name, pattern):
            return True
    return False


def test_the_readme_layout_table_names_every_folder_of_the_tree() -> None:
    table = _section(README, "Layout")
    first_cells = re.findall(r"^\| (.*?) \|", table, re.M)
    named = {
        name.rstrip("/") for cell in first_cells for name in re.findall(r"`([\w./-]+/)`", cell)
    }
    folders = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and not p.name.startswith(".") and not _ignored(p.name)
    }
    assert folders - named == set(), "add a row to the README's layout table"
    assert {n for n in named if not (ROOT / n).is_dir()} == set(), "the table names a folder gone"


def test_the_architecture_doc_names_only_files_that_exist() -> None:
    paths = set(re.findall(r"`((?:[\w-]+/)+[\w.-]*)`", ARCHITECTURE))
    assert len(paths) > 30  # a guard: the pattern still finds the rule table's files
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []


def test_the_architecture_doc_lists_the_contracts_as_built() -> None:
    table = ARCHITECTURE.split("\n## ")[0]  # the diagram and the contracts, before the seams
    rows = dict(re.findall(r"^\| `([\w-]+)` \| (.*) \|$", table, re.M))
    assert set(rows) == {c["id"] for c in CONTRACTS["contracts"]}
    layers = next(c["layers"] for c in CONTRACTS["contracts"] if c["id"] == "layers")
    documented = [part.replace("\\|", "|") for part in re.findall(r"`([^`]+)`", rows["layers"])]
    assert documented == layers, "docs/architecture.md's layers row differs from pyproject.toml"
