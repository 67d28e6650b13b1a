"""Command groups from other packages (``tillbox.commands`` entry points), each isolated.

A plugin that fails to import or to register is reported in one line on stderr and
left out; every other command still works (a broken camera package must not stop
``tillbox sale``). A plugin may not take a command name that is already taken, by the
core or by an earlier plugin: such a plugin is refused whole, so that no command ever
changes meaning because of the order plugins happen to load in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TextIO

GROUP = "tillbox.commands"
# Subcommands of ``tillbox edge`` from packages above the edge (the region console adds
# ``edge web`` and ``edge user`` here), so the edge never imports them.
EDGE_GROUP = "tillbox.edge_commands"


def installed(group: str, entries: Iterable[EntryPoint] | None = None) -> list[EntryPoint]:
    """The entry points of ``group`` in name order, so plugins load, and win a clash, in
    the same order on every machine (``entries`` replaces the installed ones in tests)."""
    found = entries if entries is not None else entry_points(group=group)
    return sorted(found, key=lambda e: e.name)


def _reason(exc: BaseException) -> str:
    """``Type: first line of the message``: one line, whatever the plugin raised."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class CommandClash(Exception):
    """A plugin tried to add a command name that already exists."""


class _GuardedCommands:
    """The subparsers action as a plugin sees it: ``add_parser`` refuses taken names and
    remembers what it added, so a plugin that fails half-way can be taken out again."""

    def __init__(self, sub: argparse._SubParsersAction, owner: str) -> None:
        self._sub = sub
        self._owner = owner
        self.added: list[str] = []

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        taken = set(self._sub.choices)
        for alias in (name, *kwargs.get("aliases", ())):
            if alias in taken:
                raise CommandClash(f"command {alias!r} already exists")
        parser = self._sub.add_parser(name, **kwargs)
        self.added.extend((name, *kwargs.get("aliases", ())))
        return parser

    def rollback(self) -> None:
        for name in self.added:
            self._sub.choices.pop(name, None)
        self._sub._choices_actions[:] = [
            a for a in self._sub._choices_actions if a.dest not in self.added
        ]

    def __getattr__(self, attr: str) -> Any:  # anything else a plugin may ask of it
        return getattr(self._sub, attr)


def load_command_plugins(
    sub: argparse._SubParsersAction,
    entries: Iterable[EntryPoint] | None = None,
    stderr: TextIO | None = None,
    group: str = GROUP,
) -> list[str]:
    """Let each plugin of ``group`` register its commands on ``sub``; returns the names of
    those that failed."""
    out = stderr if stderr is not None else sys.stderr
    failed: list[str] = []
    for entry in installed(group, entries):
        guard = _GuardedCommands(sub, entry.name)
        try:
            register: Callable[[Any], None] = entry.load()
            register(guard)
        except CommandClash as exc:
            guard.rollback()
            failed.append(entry.name)
            out.write(
                f"tillbox: warning: plugin {entry.name} ({entry.value}) refused: {exc}; "
                "uninstall one of the two packages\n"
            )
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin is reported, not fatal
            guard.rollback()
            failed.append(entry.name)
            out.write(
                f"tillbox: warning: plugin {entry.name} ({entry.value}) failed to load "
                f"({_reason(exc)}); its commands are unavailable: reinstall "
                "it (`make venv`) or remove it\n"
            )
    return failed


SHIFT_CLOSED_GROUP = "tillbox.shift_closed"


def run_shift_closed_hooks(
    args: argparse.Namespace,
    till: Any,
    event: Any,
    entries: Iterable[EntryPoint] | None = None,
) -> list[dict[str, Any]]:
    """Run the ``tillbox.shift_closed`` hooks (the hw plugin prints the Z report there).

    Each hook returns ``{"printed": bool, "message": str}``. The close is durable before
    they run, so a hook that fails to load or raises becomes a result with its reason,
    never a failed command.
    """
    results: list[dict[str, Any]] = []
    for entry in installed(SHIFT_CLOSED_GROUP, entries):
        try:
            result = dict(entry.load()(args, till, event))
        except Exception as exc:  # noqa: BLE001 - a plugin must not undo a durable close
            result = {
                "printed": False,
                "message": f"Z report not printed: plugin {entry.name} failed ({_reason(exc)})",
            }
        results.append({"hook": entry.name, **result})
    return results
