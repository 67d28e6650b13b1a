"""Test helpers for the core, shared by tests/ and hil/ (like drivers.testing).

Real components only: a demo till is a real log on disk in a folder the caller owns.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from appliance.datadir import DataDir
from appliance.till import Till

if TYPE_CHECKING:
    from appliance.formats.receipt import TB2Fields

DEMO_DEVICE = "t1"  # the device id of the suites' demo till


def demo_data_dir(root: Path, device_id: str = DEMO_DEVICE) -> DataDir:
    """A demo till (demo catalog, no shift open) created in ``root``, closed again."""
    ddir = DataDir(root)
    Till.init(ddir, device_id, demo=True).close()
    return ddir


@contextmanager
def open_selling(ddir: DataDir) -> Iterator[Till]:
    """The till in ``ddir`` opened with a shift open, closed when the block ends."""
    till = Till.open(ddir)
    try:
        till.open_shift()
        yield till
    finally:
        till.close()


def open_demo_till(root: Path, device_id: str = DEMO_DEVICE) -> AbstractContextManager[Till]:
    """A new demo till in ``root``, opened with its shift open (a context manager)."""
    return open_selling(demo_data_dir(root, device_id))


class CliResult(NamedTuple):
    """What a terminal would show: ``code, out, err = run_cli(...)`` also works."""

    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.out)


def run_cli(*argv: str) -> CliResult:
    """Run ``tillbox`` in-process and capture what a terminal would show."""
    from appliance.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


def worst_case_tb2_fields(key_id: str, event_ref: str = "ab" * 24) -> TB2Fields:
    """The largest TB2 receipt the signer may produce (docs/formats.md, C1): 64-character
    tenant and device id, 9-digit receipt numbers, three rates with 11-digit amounts and
    the longest method; the receipt layout and the size tests print and sign this one."""
    from appliance.formats import receipt as rs

    return rs.TB2Fields(
        key_id,
        "t" * 64,
        "d" * 64,
        999_999_999,
        "R",
        9_999_999_999,
        "EUR",
        ((0, -99_999_999_999), (700, -99_999_999_999), (2000, -99_999_999_999)),
        "a" * rs.METHOD_MAX,
        999_999_999,
        event_ref,
    )
