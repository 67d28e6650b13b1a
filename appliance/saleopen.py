"""Is a sale open on the kiosk's screen? An advisory lock the kiosk holds while it is.

The cart lives in the kiosk's memory, so another process (``tillbox update install``
over SSH, the till's own update timer) cannot see it. While its cart is not empty the
kiosk holds an exclusive ``flock`` on ``DIR/run/sale.lock``; anyone can ask whether the
lock is held. The kernel drops the lock when the kiosk's process ends, however it ends,
so a crash can never leave a sale "open" for ever (a marker file could).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import BinaryIO

from appliance.datadir import DataDir


def lock_path(data_dir: DataDir) -> Path:
    return data_dir.root / "run" / "sale.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(mode=0o770, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o660)


def is_open(data_dir: DataDir) -> bool:
    """True while a kiosk holds the lock (a sale on its screen)."""
    path = lock_path(data_dir)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        # A shared lock conflicts only with the kiosk's exclusive one, so two askers
        # never make each other see a sale.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our own shared lock
    return False


class SaleMark:
    """The kiosk's side: ``set(True)`` when a cart gets its first line, ``set(False)``
    when it is paid or cleared."""

    def __init__(self, data_dir: DataDir) -> None:
        self._path = lock_path(data_dir)
        self._file: BinaryIO | None = None  # a file object: garbage collection closes it

    @property
    def held(self) -> bool:
        return self._file is not None

    def set(self, sale_open: bool) -> None:
        if sale_open and self._file is None:
            file = os.fdopen(_open(self._path), "rb", buffering=0)
            try:
                # Blocks only while an asker holds its shared lock: microseconds.
                fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            except OSError:
                file.close()
                raise
            self._file = file
        elif not sale_open and self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None

    def close(self) -> None:
        self.set(False)
