"""Fixtures for the core: real SQLite files on disk in a temporary folder.

``data_dir`` and ``till`` (a demo till) come from tests/conftest.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.cli import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def run_cli(*argv: str) -> CliResult:
    """Run ``tillbox`` in-process and capture what a terminal would show."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli


@pytest.fixture
def shop(cli: Callable[..., CliResult], tmp_path: Path) -> str:
    """A demo till made and opened for selling through the CLI itself; its folder."""
    d = str(tmp_path / "shop")
    assert cli("init", "--data-dir", d, "--device-id", "stall-1", "--demo").code == 0
    assert cli("shift", "open", "--data-dir", d).code == 0
    return d
