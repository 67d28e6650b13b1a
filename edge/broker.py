"""A real mosquitto for tests, benchmarks and a laptop demo: the region's broker in miniature.

It runs the Debian ``mosquitto`` binary on a free loopback port with a password
file and the ACL shipped in ``edge/mosquitto/tillbox-acl.conf`` (verbatim, so the
tests prove the shipped ACL). It can be killed (SIGKILL: the queue in memory is
lost, as in a crash) and restarted on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from appliance.errors import TillError

ADMIN_USER = "tillbox-test-admin"  # may publish anywhere: only for tests that bypass the ACL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shipped_acl() -> str:
    return resources.files("edge.mosquitto").joinpath("tillbox-acl.conf").read_text()


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TillError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)


class LocalBroker:
    def __init__(
        self,
        workdir: Path,
        users: dict[str, str],
        port: int | None = None,
        admin_password: str | None = None,
        persistence: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
            raise TillError(
                "mosquitto is not installed; run `apt-get install mosquitto` (or "
                "`make test`, which installs it)"
            )
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = dict(users)
        if admin_password:
            self.users[ADMIN_USER] = admin_password
        self.persistence = persistence
        self.tls = tls  # (certfile, keyfile): adds a TLS listener on tls_port
        self.tls_port = free_port() if tls else 0
        self.proc: subprocess.Popen | None = None
        self._write_config()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def _write_config(self) -> None:
        passwd = self.dir / "passwd"
        passwd.write_text("")
        for user, password in self.users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwd), user, password],
                check=True,
                capture_output=True,
                timeout=30,
            )
        os.chmod(passwd, 0o600)
        acl = shipped_acl()
        if ADMIN_USER in self.users:
            acl += f"\nuser {ADMIN_USER}\ntopic readwrite #\n"
        (self.dir / "acl.conf").write_text(acl)
        os.chmod(self.dir / "acl.conf", 0o600)
        (self.dir / "data").mkdir(exist_ok=True)
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {self.dir / 'acl.conf'}",
            f"listener {self.port} 127.0.0.1",
            "max_packet_size 9000000",
            "max_queued_messages 10000",
            "max_inflight_messages 20",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.dir / 'data'}/",
            "autosave_interval 5",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.tls:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"certfile {self.tls[0]}",
                f"keyfile {self.tls[1]}",
            ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to 'mosquitto' and cannot read these
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> LocalBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.dir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.dir / "mosquitto.conf")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        try:
            wait_port(self.port, timeout)
        except TillError:
            self.stop()
            raise TillError(
                f"mosquitto did not start on port {self.port}; see {self.dir / 'mosquitto.log'}"
            ) from None
        return self

    def kill(self) -> None:
        """SIGKILL: like a crash, whatever the broker held only in memory is gone."""
        self.stop(sig=signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> LocalBroker:
        self.stop()
        return self.start()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
