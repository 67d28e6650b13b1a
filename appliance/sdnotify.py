"""systemd's sd_notify protocol: READY=1, WATCHDOG=1 and STATUS= over $NOTIFY_SOCKET.

A datagram to a Unix socket; a no-op when not started by systemd. Kept here
(not a dependency) because it is the whole protocol and every service uses it.
"""

from __future__ import annotations

import os
import socket
import threading


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``); False when there is no systemd to tell."""
    if message.startswith("READY=1") and _started is not None:
        _started.stop()  # started: the service's own loop says it is alive from here
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
        except OSError:
            return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of systemd's WatchdogSec for this process (how often to ping), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


class StartupHeartbeat:
    """WATCHDOG=1 from a thread while a service starts, until :meth:`stop`.

    systemd (252) arms ``WatchdogSec`` when the process starts, not at READY=1, so a
    start longer than it (the kiosk's Kivy import, GL set-up and screens on a slow
    machine: over a minute under emulation) is killed as hung and restarted, forever.
    The start stays bounded by ``TimeoutStartSec``; :func:`notify` stops it at READY=1,
    when the service's own loop is the one to say it is alive.
    """

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self.interval = watchdog_interval_s()

    def start(self) -> StartupHeartbeat:
        global _started
        _started = self
        if self.interval:
            threading.Thread(target=self._beat, name="startup-heartbeat", daemon=True).start()
        return self

    def _beat(self) -> None:
        while not self._stopped.wait(self.interval):
            notify("WATCHDOG=1")

    def stop(self) -> None:
        self._stopped.set()


_started: StartupHeartbeat | None = None  # the one running, stopped by READY=1
