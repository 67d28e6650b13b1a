"""atomic_write (and atomic_write_stream, the ZIP exports' writer) under injected failures:
the old file or the new, never half, no tmp left.

Like Litestream's failing reader: the writes fail after N bytes, the fsync fails, the
rename fails. After each, the target holds exactly its old bytes and the folder holds
nothing else.
"""

from __future__ import annotations

import errno
import os

import pytest

from appliance.fsutil import atomic_write, atomic_write_stream

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


def _fill_failing_after(limit: int):
    """A ``fill`` that writes NEW in 4 KiB pieces and fails once ``limit`` bytes are out,
    as a zip writer does when its source file cannot be read or the stick is full."""

    def fill(f) -> None:
        done = 0
        while done < len(NEW):
            if done >= limit:
                raise OSError(errno.ENOSPC, "No space left on device")
            chunk = NEW[done : done + min(4096, limit - done)]
            f.write(chunk)
            done += len(chunk)

    return fill


@pytest.mark.parametrize("limit", [0, 1, 4096, 99_999])
def test_stream_failing_after_n_bytes_leaves_old_file_and_no_tmp(tmp_path, limit):
    target = tmp_path / "bundle.zip"
    target.write_bytes(OLD)
    with pytest.raises(OSError, match="No space"):
        atomic_write_stream(target, _fill_failing_after(limit))
    assert target.read_bytes() == OLD
    assert _folder_after(tmp_path) == ["bundle.zip"]


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_stream_failing_fsync_or_rename_leaves_old_file_and_no_tmp(tmp_path, monkeypatch, step):
    target = tmp_path / "enrollment.zip"
    target.write_bytes(OLD)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, f"injected {step} failure")

    monkeypatch.setattr(os, step, boom)
    with pytest.raises(OSError, match="injected"):
        atomic_write_stream(target, lambda f: f.write(NEW))
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert _folder_after(tmp_path) == ["enrollment.zip"]


def test_stream_refusing_its_content_cleans_up(tmp_path):
    """A ValueError from the writer (a ZIP beyond what ZIP64-less ZIP holds) cleans up too."""

    def too_big(f) -> None:
        f.write(b"PK")
        raise ValueError("the bundle is too large")

    with pytest.raises(ValueError, match="too large"):
        atomic_write_stream(tmp_path / "big.zip", too_big)
    assert _folder_after(tmp_path) == []


def test_stream_success_replaces(tmp_path):
    target = tmp_path / "bundle.zip"
    target.write_bytes(OLD)
    atomic_write_stream(target, lambda f: f.write(NEW))
    assert target.read_bytes() == NEW
    assert _folder_after(tmp_path) == ["bundle.zip"]


def test_a_bundle_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """The inspection bundle's writer (appliance.formats.inspection) on a full USB stick:
    one line with what to do, the old bundle untouched, no tmp file on the stick."""
    from nacl.signing import SigningKey

    from appliance.errors import TillError
    from appliance.formats import inspection, zipcanon

    stick = tmp_path / "stick"
    stick.mkdir()
    content = tmp_path / "log.jsonl"
    content.write_bytes(NEW)
    out = stick / "bundle.zip"
    out.write_bytes(OLD)
    real = zipcanon.write

    def full_after_first_file(f, entries) -> None:
        real(f, entries[:1])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipcanon, "write", full_after_first_file)
    with pytest.raises(TillError) as failed:
        inspection.write_signed_zip(
            out, {"format": "x"}, {"log.jsonl": content}, SigningKey(b"k" * 32)
        )
    assert "\n" not in str(failed.value) and "space and is writable" in str(failed.value)
    assert out.read_bytes() == OLD
    assert _folder_after(stick) == ["bundle.zip"]
