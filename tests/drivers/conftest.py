"""Fixtures for the driver tests: a demo till on disk and the in-process simulators."""

from __future__ import annotations

import pytest

from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.till import Till


@pytest.fixture
def till(tmp_path):
    t = Till.init(DataDir(tmp_path / "till"), "t1", demo=True)
    t.open_shift()
    yield t
    t.close()


@pytest.fixture
def sale(till):
    return till.sell(
        [CartLine("POSTCARD", 2), CartLine("BRATW", 1), CartLine("CAFE", 1)], "cash", tendered=2000
    ).event


@pytest.fixture
def printer():
    from drivers.printer import ReceiptPrinter

    p = ReceiptPrinter("sim://", paper_width_mm=80, timeout=1.0)
    p.open()
    yield p
    p.shutdown()
