"""A whole region on one machine: ``make region`` (or ``python -m systest.region``).

A local broker with the shipped configuration and its bound identities, the edge
ingest, the web console, and two simulated tills whose cashiers sell now and then,
each with its own sync agent. A newcomer sees the whole system from a fresh clone: the
tills' sales reach the console's pages within seconds.

Everything lives under one folder (``--dir``, default ``./region-demo``): the region
key, the broker's files, the edge database, the tills' data dirs and every process's
log. The console's logins are written to ``logins.txt`` there (0600), never printed
with their passwords in a log. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.fsutil import atomic_write
from appliance.keys import generate, load_signing_key
from appliance.till import Till
from edge.broker import LocalBroker, free_port
from edge.store import Store
from systest.sync import (
    CARTS,
    EDGE_PASSWORD,
    EDGE_USER,
    PUBLISHER_PASSWORD,
    PUBLISHER_USER,
    TILLBOX,
    Proc,
    Region,
    agent_proc,
    device_password,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    wait_for,
)

TENANT = "demo"
# (device id, stall, label): two stalls of one merchant at one market
TILLS = (
    ("honey-stall-till-1", "honey-stall", "Honey stall, till 1"),
    ("mug-stall-till-1", "mug-stall", "Mug stall, till 1"),
)
# One login per role, so each page can be seen as its user sees it.
LOGINS = (
    ("admin", "admin", None),
    ("merchant", "merchant", TENANT),
    ("promoter", "promoter", TENANT),
    ("tax", "tax", None),
    ("inspector", "inspector", TENANT),
    ("technician", "technician", None),
)


class RegionDemo:
    def __init__(self, folder: Path, web_port: int, sell_every_s: float) -> None:
        self.dir = folder
        self.web_port = web_port
        self.sell_every_s = sell_every_s
        self.db = f"sqlite:///{folder / 'edge.db'}"
        self.procs: list[Proc] = []
        self.broker: LocalBroker | None = None
        self.tills: list[DataDir] = []
        self.logins: dict[str, str] = {}

    # -- assembling ---------------------------------------------------------------------
    def _region(self) -> Region:
        key, pub = self.dir / "region.key", self.dir / "region.pub"
        if not key.exists():
            generate(key, pub)
        return Region(load_signing_key(key), key, pub)

    def start(self) -> RegionDemo:
        self.dir.mkdir(parents=True, exist_ok=True)
        region = self._region()
        self.broker = LocalBroker(
            self.dir / "broker",
            {device: device_password(device) for device, _, _ in TILLS},
            workers={EDGE_USER: EDGE_PASSWORD},
            publishers={PUBLISHER_USER: PUBLISHER_PASSWORD},
            tenant=TENANT,
        ).start()
        for device, stall, label in TILLS:
            folder = DataDir(self.dir / "tills" / device)
            if not folder.config_path.exists():
                make_till(
                    self.dir / "tills",
                    device,
                    region,
                    tenant=TENANT,
                    # a calm demo: segments every few seconds, real timeouts
                    segment_max_age_s=2.0,
                    ack_timeout_s=10.0,
                    keepalive_s=30,
                )
            self.tills.append(folder)
            self._enroll(folder, stall, label)
        edge = edge_proc(self.dir, self.db, self.broker.url, region).start()
        self.procs.append(edge)
        wait_for(lambda: edge_ready(edge) or not edge.alive(), 30, "the edge to subscribe")
        if not edge.alive():
            raise TillError(f"the edge stopped at start; see {edge.log_path}")
        for folder in self.tills:
            self.procs.append(agent_proc(folder, self.broker.url).start())
        self._start_console(region)
        return self

    def _enroll(self, folder: DataDir, stall: str, label: str) -> None:
        device = folder.load_config().device_id
        store = Store.open(self.db)
        try:
            known = store.device_key(device) is not None
            if not known:
                enroll(self.db, folder)
            set_profile = getattr(store, "set_device_profile", None)
            if set_profile is not None:
                with store.transaction():
                    set_profile(device, stall, label)
        finally:
            store.close()

    def _start_console(self, region: Region) -> None:
        passwords = self.dir / "logins.txt"
        lines = []
        for name, role, tenant in LOGINS:
            password = secrets.token_urlsafe(9)
            pw_file = self.dir / f".pw-{name}"
            atomic_write(pw_file, password.encode(), mode=0o600)
            args = ["edge", "user", "add", "--db", self.db, "--name", name, "--role", role]
            args += ["--tenant", tenant] if tenant else []
            if role == "inspector":  # the inspector inspects the demo's stalls
                args += [a for _, stall, _ in TILLS for a in ("--stall", stall)]
            args += ["--password-file", str(pw_file), "--replace"]
            done = _run(*args)
            pw_file.unlink()
            if done.returncode != 0:
                raise TillError(f"could not add console user {name}: {done.stderr.strip()}")
            self.logins[name] = password
            lines.append(f"{name:<11} {role:<11} {password}")
        atomic_write(passwords, ("\n".join(lines) + "\n").encode(), mode=0o600)
        assert self.broker is not None
        publisher_pw = self.dir / ".publisher-password"
        atomic_write(publisher_pw, PUBLISHER_PASSWORD.encode(), mode=0o600)
        web = Proc(
            [
                TILLBOX,
                "edge",
                "web",
                "--db",
                self.db,
                "--listen",
                f"127.0.0.1:{self.web_port}",
                "--key",
                str(region.key_path),
                "--insecure-cookie",  # plain http on localhost: the demo only
                # enrollment decisions go down to the tills at once
                "--broker",
                self.broker.url,
                "--publisher",
                PUBLISHER_USER,
                "--publisher-password-file",
                str(publisher_pw),
            ],
            self.dir / "web.log",
        ).start()
        self.procs.append(web)

    # -- running ------------------------------------------------------------------------
    def sell_one(self, rng: random.Random) -> None:
        folder = rng.choice(self.tills)
        with Till.open(folder) as till:
            till.sell(rng.choice(CARTS), rng.choice(["cash", "card"]))

    def run(self, duration_s: float | None) -> None:
        rng = random.Random()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            self.sell_one(rng)
            dead = [p for p in self.procs if not p.alive()]
            if dead:
                raise TillError(f"a region process stopped; see {dead[0].log_path}")
            time.sleep(self.sell_every_s)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.broker is not None:
            self.broker.stop()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TILLBOX, *args], capture_output=True, text=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make region", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("region-demo"))
    parser.add_argument("--port", type=int, default=8080, help="the console's port (0: any)")
    parser.add_argument("--sell-every", type=float, default=4.0, metavar="SECONDS")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args(argv)
    demo = RegionDemo(args.dir.resolve(), args.port or free_port(), args.sell_every)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        demo.start()
        print(
            f"region running: console http://127.0.0.1:{demo.web_port}/ "
            f"(logins in {demo.dir / 'logins.txt'}), broker {demo.broker.url}, "
            f"{len(demo.tills)} tills selling every {args.sell_every:g} s; Ctrl-C stops",
            flush=True,
        )
        demo.run(args.duration)
    except KeyboardInterrupt:
        pass
    except TillError as exc:
        print(f"make region: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
