"""Test helpers shipped in the package (like gpiozero's), shared by tests/ and hil/."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until truthy and return its value; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


class RigLocked(RuntimeError):
    """Another run holds the hardware rig."""


class RigLock:
    """An exclusive ``flock`` on a lock file, so two HIL runs never share one rig.

    The lock dies with the process (the kernel drops it), so a crashed run never
    leaves the rig locked; the file keeps the holder's pid for the message.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> RigLock:
        import fcntl
        import os

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RigLocked(
                f"the HIL rig is in use by process {holder} (lock {self.path}); "
                "wait for that run to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        import os

        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RigLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
