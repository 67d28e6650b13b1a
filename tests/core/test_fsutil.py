"""atomic_write under injected failures: the old file or the new, never half, no tmp left.

Like Litestream's failing reader: the writes fail after N bytes, the fsync fails, the
rename fails. After each, the target holds exactly its old bytes and the folder holds
nothing else.
"""

from __future__ import annotations

import errno
import os

import pytest

from appliance.fsutil import atomic_write

OLD = b"old contents\n"
NEW = b"n" * 100_000


class FailAfter:
    """os.write that writes at most ``limit`` bytes in all, then raises ENOSPC."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.real = os.write

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.left <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        chunk = bytes(data[: min(len(data), self.left, 4096)])
        self.left -= len(chunk)
        return self.real(fd, chunk)


def _folder_after(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("limit", [0, 1, 4096, 99_999])
def test_write_failing_after_n_bytes_leaves_old_file_and_no_tmp(tmp_path, monkeypatch, limit):
    target = tmp_path / "state.json"
    target.write_bytes(OLD)
    monkeypatch.setattr(os, "write", FailAfter(limit))
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert _folder_after(tmp_path) == ["state.json"]


@pytest.mark.parametrize("step", ["fsync", "replace", "fchmod"])
def test_failing_fsync_rename_or_chmod_leaves_old_file_and_no_tmp(tmp_path, monkeypatch, step):
    target = tmp_path / "tillbox.toml"
    target.write_bytes(OLD)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, f"injected {step} failure")

    monkeypatch.setattr(os, step, boom)
    with pytest.raises(OSError, match="injected"):
        atomic_write(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert _folder_after(tmp_path) == ["tillbox.toml"]


def test_interrupt_mid_write_cleans_up(tmp_path, monkeypatch):
    """A KeyboardInterrupt (or SystemExit from a signal handler) cleans up too."""
    target = tmp_path / "key"

    def interrupted(fd: int, data: memoryview) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, NEW, mode=0o600)
    monkeypatch.undo()
    assert _folder_after(tmp_path) == []


def test_success_replaces_with_mode(tmp_path):
    target = tmp_path / "secret"
    target.write_bytes(OLD)
    atomic_write(target, NEW, mode=0o600)
    assert target.read_bytes() == NEW
    assert target.stat().st_mode & 0o777 == 0o600
    assert _folder_after(tmp_path) == ["secret"]
