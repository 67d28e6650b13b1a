"""The HIL rig lock: a second run is refused with the holder's pid; a dead holder frees it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drivers.testing import RigLock, RigLocked

HOLD = """
import sys, time
from drivers.testing import RigLock
lock = RigLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(30)
"""


def test_second_run_is_refused_until_the_first_ends(tmp_path):
    path = str(tmp_path / "rig.lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RigLocked, match=f"process {holder.pid}"):
            RigLock(path).acquire()
    finally:
        holder.kill()  # a crashed run: the kernel drops its lock
        holder.wait(timeout=10)
    with RigLock(path):
        with pytest.raises(RigLocked):
            RigLock(path).acquire()
    RigLock(path).acquire().release()
