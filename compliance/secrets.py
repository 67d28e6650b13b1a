"""Which files of a till hold secrets, and which of them other users can read.

A secret file is created 0600 (0640 where a service's group needs it); the
self-test's ``secrets`` check fails when one is readable or writable by others.
"""

from __future__ import annotations

import stat
from pathlib import Path

from appliance.datadir import Config, DataDir

OTHERS = 0o006  # read or write by users outside the owner and the group


def secret_files(data_dir: DataDir, config: Config) -> list[Path]:
    """The device key, the sync agent's state, the broker password and TLS key files,
    and tillbox.toml itself when it holds a secret; only those that exist."""
    sync = config.section("sync")
    agent_db = data_dir.sync_dir / "agent.db"
    candidates = [
        data_dir.private_key_path,
        agent_db,
        agent_db.with_name("agent.db-wal"),
        agent_db.with_name("agent.db-shm"),
    ]
    candidates += [Path(sync[k]) for k in ("password_file", "tls_key") if sync[k]]
    if config.holds_secret():
        candidates.append(data_dir.config_path)
    return [p for p in candidates if p.is_file()]


def exposed_secrets(paths: list[Path]) -> list[tuple[Path, int]]:
    """(path, mode) of each file that others can read or write."""
    exposed = []
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & OTHERS:
            exposed.append((path, mode))
    return exposed
