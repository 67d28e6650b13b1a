"""Fixtures for the kiosk tests: one private Xvfb for the session."""

from __future__ import annotations

import pytest

from ui.testing import start_xvfb


@pytest.fixture(scope="session")
def xvfb():
    try:
        proc, display = start_xvfb()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield display
    proc.terminate()
    proc.wait(timeout=5)
