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


class TillClock:
    """The wall clock the till's log (and every rule that reads the time) sees, set by
    the test: ``with TillClock(ms) as clock: ... clock.set(ms2)``. Each reading
    advances it by ``step_ms`` (events keep distinct, increasing stamps); the monotonic
    clock, ids and everything outside the log stay real."""

    def __init__(self, start_ms: int, step_ms: int = 1) -> None:
        self.ms = start_ms
        self.step_ms = step_ms
        self._real: Any = None

    def set(self, ms: int) -> None:
        self.ms = ms

    def advance(self, ms: int) -> None:
        self.ms += ms

    def time_ns(self) -> int:
        now = self.ms
        self.ms += self.step_ms
        return now * 1_000_000

    def __enter__(self) -> TillClock:
        import time
        import types

        import appliance.log

        self._real = appliance.log.time
        appliance.log.time = types.SimpleNamespace(  # type: ignore[assignment]
            time_ns=self.time_ns, monotonic_ns=time.monotonic_ns
        )
        return self

    def __exit__(self, *exc: object) -> None:
        import appliance.log

        appliance.log.time = self._real


def confirm_clock(till: Till, result: str = "pass") -> None:
    """Record a self-test whose ``clock`` check had ``result`` (this boot's time source)."""
    till.record_selftest(
        {
            "verdict": "pass" if result == "pass" else "warn",
            "trigger": "cli",
            "checks": [{"name": "clock", "result": result, "fatal": False, "value": "", "fix": ""}],
        }
    )
