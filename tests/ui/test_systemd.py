"""The kiosk under systemd: READY=1 after the first frame, WATCHDOG=1 from the UI clock,
a clean exit on SIGTERM."""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import pytest

from ui.testing import Kiosk, make_till

pytestmark = pytest.mark.slow


def test_ready_after_first_frame_watchdog_from_the_ui_clock_and_clean_sigterm(xvfb, tmp_path):
    ddir = make_till(tmp_path / "till", fatal=["log"])
    short = Path(tempfile.mkdtemp(prefix="tbui-", dir="/tmp"))  # AF_UNIX paths are short
    path = short / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    kiosk = Kiosk(xvfb, ddir, extra_env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            "READY=1" not in messages or messages.count("WATCHDOG=1") < 5
        ):
            try:
                messages.append(sock.recv(256).decode())
            except TimeoutError:
                pass
        assert messages.count("READY=1") == 1
        assert messages.count("WATCHDOG=1") >= 5
        assert kiosk.state()["ready"] is True  # READY came with the first frame
    finally:
        status = kiosk.stop()
        sock.close()
        path.unlink(missing_ok=True)
        short.rmdir()
    assert status == 0, Path(kiosk.log.name).read_text()[-2000:]
