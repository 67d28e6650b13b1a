"""What every ``tillbox edge ...`` command group shares: the database, the region key,
the MQTT password (edge/cli.py, edge/enrollment_cli.py)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `tillbox --help` stays fast
    from nacl.signing import SigningKey

    from edge.store import Store

PASSWORD_ENV = "TILLBOX_MQTT_PASSWORD"
KEY_ENV = "TILLBOX_REGION_KEY"


def open_store(args: argparse.Namespace) -> Store:
    from edge.store import Store

    return Store.open(args.db)


def password(args: argparse.Namespace) -> str:
    if getattr(args, "password_file", None):
        from appliance.boundedio import TEXT_FILE_LIMIT, read_text_bounded

        return read_text_bounded(args.password_file, TEXT_FILE_LIMIT, "--password-file").strip()
    return os.environ.get(PASSWORD_ENV, "")


def region_key(args: argparse.Namespace) -> SigningKey:
    from pathlib import Path

    from appliance.errors import TillError
    from appliance.keys import load_signing_key

    path = args.key or os.environ.get(KEY_ENV)
    if not path:
        raise TillError(
            f"no region key; pass --key FILE or set {KEY_ENV} (create one with "
            "`tillbox edge keygen --out FILE`)"
        )
    if not Path(path).is_file():
        raise TillError(
            f"region key {path} does not exist; create it with `tillbox edge keygen "
            "--out FILE` (once per region) or point --key at it"
        )
    return load_signing_key(Path(path))


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", required=True, metavar="URL", help="sqlite:///PATH or postgresql://USER@HOST/DB"
    )
