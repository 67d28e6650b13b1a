"""Fixtures for the core: real SQLite files on disk in a temporary folder.

``data_dir`` and ``till`` (a demo till) come from tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.testing import CliResult, run_cli


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
