"""A real mosquitto for tests, benchmarks and a laptop demo: the region's broker in miniature.

It runs the Debian ``mosquitto`` binary with the shipped ``edge/mosquitto/mosquitto.conf``
(only the ports and paths substituted, so the tests prove the shipped configuration)
and the identities of ``edge.identities``, added through the dynamic-security plugin's
``$CONTROL`` topic exactly as a region adds them. It can be killed (SIGKILL: the queue
in memory is lost, as in a crash) and restarted on the same port.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from appliance.errors import TillError
from appliance.formats.brokerurl import BrokerURL
from edge import identities

ADMIN_USER = "tillbox-test-admin"  # may publish anywhere: only for tests that bypass the ACL
CONTROL_USER = "tillbox-broker-admin"  # sends the $CONTROL commands that add identities
SHIPPED_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shipped_config() -> str:
    return resources.files("edge.mosquitto").joinpath("mosquitto.conf").read_text()


def dynsec_plugin_path() -> str:
    """Where this machine's mosquitto keeps the plugin (the multiarch directory varies)."""
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")) + sorted(
        glob.glob("/usr/lib/mosquitto_dynamic_security.so")
    )
    if not found:
        raise TillError(
            "mosquitto's dynamic-security plugin is missing; install Debian's mosquitto 2.0 "
            "(`apt-get install mosquitto`)"
        )
    return found[0]


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


def render_config(shipped: str, replace: dict[str, str | None], extra: list[str]) -> str:
    """The shipped file with whole lines replaced; a line replaced by ``None`` drops its
    whole paragraph (e.g. the TLS listener when a test runs without TLS).

    Every line named in ``replace`` must be in the shipped file, so a change to the file
    that the substitutions no longer follow fails loudly instead of testing something else."""
    missing = sorted(set(replace) - set(shipped.splitlines()))
    if missing:
        raise TillError(
            f"the shipped mosquitto.conf no longer has {missing}; update edge/broker.py's "
            "substitutions to match it"
        )
    out = []
    for paragraph in shipped.split("\n\n"):
        lines = paragraph.split("\n")
        if any(line in replace and replace[line] is None for line in lines):
            continue
        out.append("\n".join(replace.get(line) or line for line in lines))
    return "\n\n".join(out).rstrip("\n") + "\n\n" + "\n".join(extra) + "\n"


def start_server(
    what: str, argv: list[str], log_path: Path, port: int, timeout: float
) -> subprocess.Popen:
    """Start a local server process logging to ``log_path`` and wait until ``port``
    answers; a server that does not come up is stopped and named with its log."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, timeout)
    except TillError:
        stop_process(proc)
        raise TillError(f"{what} did not start on port {port}; see {log_path}") from None
    return proc


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Signal ``proc`` and reap it; SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class LocalBroker:
    def __init__(
        self,
        workdir: Path,
        devices: dict[str, str],
        workers: dict[str, str] | None = None,
        publishers: dict[str, str] | None = None,
        port: int | None = None,
        admin_password: str | None = None,
        persistence: bool = True,
        tls: tuple[Path, Path] | None = None,
        tenant: str = "demo",
    ) -> None:
        """``devices`` maps a device id (in ``tenant``) to its password; ``workers`` and
        ``publishers`` map an ingest worker's or publisher's name to its password."""
        if shutil.which("mosquitto") is None:
            raise TillError(
                "mosquitto is not installed; run `apt-get install mosquitto` (or "
                "`make test`, which installs it)"
            )
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.identities = [(identities.device(tenant, d), pw) for d, pw in devices.items()]
        self.identities += [(identities.worker(w), pw) for w, pw in (workers or {}).items()]
        self.identities += [(identities.publisher(p), pw) for p, pw in (publishers or {}).items()]
        if admin_password:
            self.identities.append((identities.superuser(ADMIN_USER), admin_password))
        self.control_password = secrets.token_urlsafe(16)
        self.provisioned = False
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

    @property
    def config_path(self) -> Path:
        return self.dir / "mosquitto.conf"

    def control(self) -> identities.Control:
        return identities.Control(BrokerURL.parse(self.url), CONTROL_USER, self.control_password)

    def _write_config(self) -> None:
        dynsec = self.dir / "dynamic-security.json"
        dynsec.unlink(missing_ok=True)
        identities.write_initial_config(dynsec, CONTROL_USER, self.control_password)
        (self.dir / "data").mkdir(exist_ok=True)
        replace: dict[str, str | None] = {
            f"plugin {SHIPPED_PLUGIN}": f"plugin {dynsec_plugin_path()}",
            "plugin_opt_config_file /var/lib/mosquitto/dynamic-security.json": (
                f"plugin_opt_config_file {dynsec}"
            ),
            "persistence true": f"persistence {'true' if self.persistence else 'false'}",
            "persistence_location /var/lib/mosquitto/": (
                f"persistence_location {self.dir / 'data'}/"
            ),
            "listener 1883 127.0.0.1": f"listener {self.port} 127.0.0.1",
            "listener 8883": f"listener {self.tls_port} 127.0.0.1" if self.tls else None,
        }
        if self.tls:
            replace["certfile /etc/mosquitto/certs/region.crt"] = f"certfile {self.tls[0]}"
            replace["keyfile /etc/mosquitto/certs/region.key"] = f"keyfile {self.tls[1]}"
        extra = ["log_dest stderr", "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:
            extra.append("user root")  # otherwise it drops to 'mosquitto' and cannot read these
        self.config_path.write_text(render_config(shipped_config(), replace, extra))

    def start(self, timeout: float = 10.0) -> LocalBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = start_server(
            "mosquitto",
            ["mosquitto", "-c", str(self.dir / "mosquitto.conf")],
            self.dir / "mosquitto.log",
            self.port,
            timeout,
        )
        if not self.provisioned:  # the plugin saves them: a restart keeps them
            control = self.control()
            for identity, password in self.identities:
                control.add(identity, password)
            self.provisioned = True
        return self

    def kill(self) -> None:
        """SIGKILL: like a crash, whatever the broker held only in memory is gone."""
        self.stop(sig=signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, sig)

    def restart(self) -> LocalBroker:
        self.stop()
        return self.start()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
