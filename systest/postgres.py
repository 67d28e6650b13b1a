"""A real PostgreSQL of our own for tests and benchmarks: a throw-away cluster on a free port.

The suite must not lean on whatever server a machine happens to run on 5432 (a fresh
Debian machine has none, and a developer's may hold data), so it starts its own:
``initdb`` into a folder, ``postgres`` on a free loopback port with its socket in
that folder, trust authentication for loopback only, and no fsync (the data is thrown
away; durability is the edge's job, tested against the server's semantics, not its
disk). PostgreSQL refuses to run as root, so under root the cluster belongs to the
``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from appliance.errors import TillError
from edge.broker import free_port, start_server

PG_USER = "postgres"  # the cluster's superuser name


def postgres_bindir() -> Path:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise TillError(
        "the PostgreSQL server is not installed; run `apt-get install postgresql` "
        "(or `make test`, which installs it)"
    )


class LocalPostgres:
    """``with LocalPostgres(folder) as pg: pg.create_database()`` gives a fresh database URL."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        self.dir = Path(workdir)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self._owner = pwd.getpwnam(PG_USER) if os.geteuid() == 0 else None

    @property
    def base_url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}"

    def _run_as_owner(self, argv: list[str]) -> list[str]:
        if self._owner is None:
            return argv
        return ["runuser", "-u", PG_USER, "--", *argv]

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = self.dir / "data"
        if self._owner is not None:
            # The owner must reach the folder through every parent (pytest's tmp is 0700).
            for parent in [self.dir, *self.dir.parents]:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
            os.chown(self.dir, self._owner.pw_uid, self._owner.pw_gid)
        if (data / "PG_VERSION").exists():
            return
        proc = subprocess.run(
            self._run_as_owner(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    PG_USER,
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise TillError(f"initdb failed in {data}: {last}")

    def start(self, timeout: float = 30.0) -> LocalPostgres:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._prepare()
        self.proc = start_server(
            "PostgreSQL",
            self._run_as_owner(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.dir / "data"),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.dir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "max_connections=200",
                ]
            ),
            self.dir / "postgres.log",
            self.port,
            timeout,
        )
        try:
            self._wait_ready(timeout)
        except TillError:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(f"{self.base_url}/postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:  # "the database system is starting up"
                if time.monotonic() > deadline:
                    raise TillError(f"PostgreSQL on {self.port} never accepted a login") from None
                time.sleep(0.1)

    def create_database(self, prefix: str = "tillbox") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"{self.base_url}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{self.base_url}/{name}"

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(f"{self.base_url}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT is postgres' "fast" shutdown (SIGTERM would wait for every client to
        # leave). Signal the postmaster itself: under root, proc is runuser.
        pidfile = self.dir / "data" / "postmaster.pid"
        try:
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)
        except (OSError, ValueError, IndexError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
