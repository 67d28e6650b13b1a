"""The till's data folder and its configuration file.

Layout (everything a till owns lives here, on the data partition)::

    DIR/tillbox.toml        configuration (hardware URLs, shop, limits, sync)
    DIR/log.db              the event log and its projections (SQLite, WAL)
    DIR/keys/device.key     Ed25519 private key seed, hex, mode 0600
    DIR/keys/device.pub     public key, hex
    DIR/media/              photos and scans (onboarding, inspection)
    DIR/sync/               the sync agent's own state (agent.db 0640)
    DIR/sync/broker-password.secret   the broker password, 0600 ([sync] password_file)
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from appliance.boundedio import TEXT_FILE_LIMIT, read_bounded
from appliance.config import Config, validate
from appliance.errors import TillError
from appliance.fsutil import atomic_write

__all__ = ["Config", "DataDir", "ENV_VAR"]

ENV_VAR = "TILLBOX_DATA_DIR"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def resolve(cls, value: str | os.PathLike[str] | None) -> DataDir:
        """From ``--data-dir`` or else ``$TILLBOX_DATA_DIR``; a clear error if neither."""
        chosen = value or os.environ.get(ENV_VAR)
        if not chosen:
            raise TillError(f"no data folder given; pass --data-dir DIR or set {ENV_VAR}")
        return cls(Path(chosen).expanduser().absolute())

    @property
    def config_path(self) -> Path:
        return self.root / "tillbox.toml"

    @property
    def log_path(self) -> Path:
        return self.root / "log.db"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def private_key_path(self) -> Path:
        return self.keys_dir / "device.key"

    @property
    def public_key_path(self) -> Path:
        return self.keys_dir / "device.pub"

    @property
    def media_dir(self) -> Path:
        return self.root / "media"

    @property
    def sync_dir(self) -> Path:
        return self.root / "sync"

    @property
    def broker_password_path(self) -> Path:
        """Where provisioning puts the broker password (0600; ``[sync] password_file``).

        The ``.secret`` suffix keeps it out of inspection bundles."""
        return self.sync_dir / "broker-password.secret"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def require(self) -> DataDir:
        if not self.exists() and self.log_path.exists():
            raise TillError(
                f"an earlier `tillbox init` in {self.root} was interrupted (no "
                "tillbox.toml); remove the folder's log.db and keys/ and run "
                "`tillbox init` again"
            )
        if not self.exists():
            raise TillError(
                f"{self.root} is not a till data folder (no tillbox.toml); run "
                f"`tillbox init --data-dir {self.root} --device-id ID` first"
            )
        return self

    def load_config(self) -> Config:
        self.require()
        try:
            raw = read_bounded(self.config_path, TEXT_FILE_LIMIT, "tillbox.toml")
            data = tomllib.loads(raw.decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: TOML, UTF-8
            raise TillError(
                f"{self.config_path} cannot be read ({exc}); fix the file or "
                "restore it from the card image"
            ) from None
        return Config(validate(data, str(self.config_path)))

    def save_config(self, config: Config) -> None:
        """Write the config crash-safely, never wider than it was; 0600 with a secret in it."""
        try:
            mode = stat.S_IMODE(self.config_path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644
        if config.holds_secret():
            mode &= 0o660  # a password: never readable by others (the group is the service's)
            if not self.config_path.exists():
                mode = 0o600
        data = tomli_w.dumps(config.data).encode("utf-8")
        atomic_write(self.config_path, data, mode=mode)
