"""Fixtures for the core: real SQLite files on disk in a temporary folder."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.datadir import DataDir
from appliance.till import Till


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
def cli():
    return run_cli


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    d = DataDir(tmp_path / "till")
    Till.init(d, "stall-test", demo=True).close()
    return d


@pytest.fixture
def till(data_dir: DataDir):
    t = Till.open(data_dir)
    t.open_shift()
    yield t
    t.close()
