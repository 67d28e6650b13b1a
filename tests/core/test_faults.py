"""A full disk and a read-only data partition: one-line error, nothing lost, nothing half-written.

These use real file systems: a small tmpfs mounted for the test (needs root, which
CI and the Pi image's test runs have; elsewhere they are skipped with the reason).
"""

import os
import subprocess
from pathlib import Path

import pytest

from appliance.datadir import DataDir
from appliance.errors import StorageError
from appliance.pricing import CartLine
from appliance.till import Till


def _can_mount() -> bool:
    found = subprocess.run(["which", "mount"], capture_output=True).returncode == 0
    return os.geteuid() == 0 and found


pytestmark = pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path: Path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _trading_till(root: Path) -> tuple[DataDir, int]:
    d = DataDir(root / "till")
    with Till.init(d, "fault-1", demo=True) as till:
        till.open_shift()
        for _ in range(5):
            till.sell([CartLine("CAFE", 1)], "cash")
        return d, till.log.last()[0]


def test_full_disk_refuses_the_sale_and_keeps_every_confirmed_one(small_fs, cli):
    d, confirmed = _trading_till(small_fs)
    filler = small_fs / "filler"
    with open(filler, "wb") as f:  # fill the file system to the last block
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    result = cli("sale", "--data-dir", str(d.root), "--item", "MUG-01", "--pay", "cash")
    assert result.code == 3 and result.err.count("\n") == 1
    assert "is full" in result.err and "nothing was recorded" in result.err
    filler.unlink()
    with Till.open(d) as till:
        assert till.log.last()[0] == confirmed
        assert till.verify().ok
        till.sell([CartLine("MUG-01", 1)], "cash")  # trading resumes once there is space
        assert till.log.last()[0] == confirmed + 1


def test_read_only_data_partition(small_fs, cli):
    d, confirmed = _trading_till(small_fs)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    result = cli("sale", "--data-dir", str(d.root), "--item", "CAFE", "--pay", "cash")
    assert result.code == 3 and result.err.count("\n") == 1
    assert "read-only" in result.err
    # an inspector can still verify a card mounted read-only
    verify = cli("log", "verify", "--data-dir", str(d.root), "--json")
    assert verify.code == 0 and verify.json()["last_seq"] == confirmed
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    with Till.open(d) as till:
        assert till.log.last()[0] == confirmed and till.verify().ok


def test_storage_error_messages_say_what_to_do(tmp_path):
    from appliance.log import storage_error

    err = storage_error(OSError(28, "No space left on device"), tmp_path)
    assert isinstance(err, StorageError) and "free space" in str(err)
