"""Fixtures for the driver tests: a sale and the simulators (``till``: tests/conftest.py)."""

from __future__ import annotations

import pytest

from appliance.pricing import CartLine


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
