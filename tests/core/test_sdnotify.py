"""systemd's notify protocol as the services speak it, against a real datagram socket."""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import pytest

from appliance import sdnotify


@pytest.fixture
def notify_socket(monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix="tbsd-", dir="/tmp"))  # AF_UNIX paths are short
    path = folder / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # pings every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()
    path.unlink()
    folder.rmdir()


def received(sock: socket.socket, seconds: float) -> list[str]:
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(64).decode())
        except TimeoutError:
            pass
    return got


def test_the_start_up_heartbeat_pings_until_the_service_loop_takes_over(notify_socket):
    """A kiosk whose start takes longer than WatchdogSec (a slow machine) is not killed as
    hung: the thread pings while the main thread is busy starting, then stops."""
    sdnotify.StartupHeartbeat().start()
    time.sleep(0.5)  # the main thread busy: Kivy's import, GL, the screens
    during = received(notify_socket, 0.01)
    assert during.count("WATCHDOG=1") >= 3 and set(during) == {"WATCHDOG=1"}
    assert sdnotify.notify("READY=1")  # started: the heartbeat stops by itself
    received(notify_socket, 0.2)  # READY=1, and one ping may have been on its way
    assert received(notify_socket, 0.3) == []


def test_no_heartbeat_without_a_watchdog(notify_socket, monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC")
    beat = sdnotify.StartupHeartbeat().start()
    assert beat.interval is None
    assert received(notify_socket, 0.3) == []
    beat.stop()
