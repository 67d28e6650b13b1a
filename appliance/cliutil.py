"""What every ``tillbox`` command group shares: the parser, options, output.

Plugin packages (drivers, sync_agent, edge, compliance, ui) register their
command groups through the ``tillbox.commands`` entry point and use these
helpers, so every command reads ``--data-dir``/``TILLBOX_DATA_DIR`` the same
way and fails with one line that says what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from appliance.datadir import DataDir
from appliance.formats.canonical import MAX_SAFE_INT

if TYPE_CHECKING:
    from appliance.till import Till


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with the fix) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def whole_number(text: str) -> int:
    """argparse ``type=``: a whole number the log can hold (|n| <= 2**53-1), else exit 2."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (at most 2**53-1)")
    return value


def a_number(text: str, unit: str) -> float:
    """For an argparse ``type=``: ``text`` as a number of ``unit`` (its range is the
    caller's to check), else ``'x' is not a number of UNIT`` and exit 2."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", metavar="DIR", help="the till's data folder (default: $TILLBOX_DATA_DIR)"
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def till_command(
    sub: argparse._SubParsersAction, name: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand that works on one till: it takes ``--data-dir`` and ``--json``."""
    parser = sub.add_parser(name, **kwargs)
    add_data_dir(parser)
    add_json(parser)
    return parser


def data_dir(args: argparse.Namespace) -> DataDir:
    return DataDir.resolve(getattr(args, "data_dir", None))


def open_till(args: argparse.Namespace) -> Till:
    """The till of ``--data-dir``, for a plugin's command to hand to the core's services."""
    from appliance.till import Till

    return Till.open(data_dir(args))


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    """Print ``obj`` as one JSON line with --json, else the human text."""
    if getattr(args, "json", False):
        print(json.dumps(obj, ensure_ascii=False, sort_keys=True))
    else:
        print(text)


def warn(message: str) -> None:
    """One line on stderr about something that went wrong after the work was done."""
    sys.stderr.write(f"tillbox: warning: {message}\n")


def emit_durable(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    """:func:`emit` for a result that is already durable: an output the terminal cannot
    encode is written ASCII-escaped, never raised."""
    try:
        emit(args, obj, text)
    except UnicodeEncodeError:
        if getattr(args, "json", False):
            print(json.dumps(obj, ensure_ascii=True, sort_keys=True))
        else:
            print(text.encode("ascii", "backslashreplace").decode("ascii"))
