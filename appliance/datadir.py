"""The till's data folder and its configuration file.

Layout (everything a till owns lives here, on the data partition)::

    DIR/tillbox.toml        configuration (hardware URLs, shop, limits, sync)
    DIR/log.db              the event log and its projections (SQLite, WAL)
    DIR/keys/device.key     Ed25519 private key seed, hex, mode 0600
    DIR/keys/device.pub     public key, hex
    DIR/media/              photos and scans (onboarding, inspection)
    DIR/sync/               the sync agent's own state
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from appliance.errors import TillError
from appliance.fsutil import atomic_write

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
            data = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TillError(
                f"{self.config_path} cannot be read ({exc}); fix the file or "
                "restore it from the card image"
            ) from None
        return Config(merge_defaults(data))

    def save_config(self, config: Config) -> None:
        atomic_write(self.config_path, tomli_w.dumps(config.data).encode("utf-8"))


DEFAULTS: dict[str, Any] = {
    "device": {"id": "", "tenant": "demo"},
    "shop": {
        "name": "tillbox demo stall",
        "location": "",
        "permit": "",
        "tax_profile": "eu-market",
        "locale": "en",
        "receipt_footer": "Thank you!",
    },
    "payment": {
        # Card payments taken while offline are a risk the merchant carries;
        # these caps bound it per transaction and per device until synced.
        "card_offline_limit_minor": 10000,
        "card_offline_device_limit_minor": 50000,
    },
    "hardware": {
        "printer": "sim://",
        "engraver": "sim://",
        "camera": "sim://",
        "gpio": "sim://",
        "printer_profile": "default",
        "paper_width_mm": 80,
    },
    "sync": {"broker": "", "segment_max_events": 1000, "segment_max_age_s": 5},
    "location": {"latitude": 0.0, "longitude": 0.0},
}


def merge_defaults(data: dict[str, Any]) -> dict[str, Any]:
    merged = {}
    for section, defaults in DEFAULTS.items():
        merged[section] = {**defaults, **data.get(section, {})}
    for section, values in data.items():
        merged.setdefault(section, values)
    return merged


@dataclass
class Config:
    data: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        return self.data.setdefault(name, {})

    @property
    def device_id(self) -> str:
        return self.data["device"]["id"]
