"""Fixtures every test package shares; the helpers behind them live in the packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.datadir import DataDir
from appliance.testing import demo_data_dir, open_selling
from appliance.till import Till


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    """A demo till's folder on disk (no shift open, nothing sold)."""
    return demo_data_dir(tmp_path / "till")


@pytest.fixture
def till(data_dir: DataDir) -> Iterator[Till]:
    """The demo till of ``data_dir``, open, with its shift open."""
    with open_selling(data_dir) as t:
        yield t
