"""Test helpers for the core, shared by tests/ and hil/ (like drivers.testing).

Real components only: a demo till is a real log on disk in a folder the caller owns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from appliance.datadir import DataDir
from appliance.till import Till

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
