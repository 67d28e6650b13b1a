"""What every ``tillbox edge ...`` command group shares: the database, the region key,
the MQTT password, and how a signed list is delivered (edge/cli.py,
edge/enrollment_cli.py, edge/release_cli.py)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from appliance.cliutil import add_json, emit, whole_number

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


DB_HELP = "sqlite:///PATH or postgresql://USER@HOST/DB (the edge's database)"


def database_url(text: str) -> str:
    """--db's value, refused when it carries a password: a command line is visible to
    every user of the host (``ps``) and lands in shell histories and unit files."""
    from urllib.parse import urlsplit

    try:
        has_password = urlsplit(text).password is not None
    except ValueError:  # a malformed port or IPv6 host: Store.open names the problem
        has_password = False
    if has_password:
        raise argparse.ArgumentTypeError(
            "a database URL must not hold a password; write it to ~/.pgpass (or a file "
            "named by PGPASSFILE), where PostgreSQL's client reads it"
        )
    return text


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, metavar="URL", type=database_url, help=DB_HELP)


def deliver(args: argparse.Namespace, kept: object) -> list[str]:
    """Write the signed bytes to --out and publish them retained with --broker; what
    was done, one line each."""
    from pathlib import Path

    from appliance.fsutil import atomic_write

    done = []
    data = kept.data  # type: ignore[attr-defined]
    if getattr(args, "out", None):
        atomic_write(Path(args.out), data)
        done.append(f"written to {args.out} (for `tillbox region apply FILE` at a till)")
    if args.broker:
        from appliance.formats.brokerurl import BrokerURL
        from edge.publish import send_bytes

        broker = BrokerURL.parse(args.broker)
        send_bytes(
            broker,
            broker.username or args.username,
            broker.password or password(args),
            kept.topic,  # type: ignore[attr-defined]
            data,
            retain=True,
        )
        done.append(f"published retained on {kept.topic}")  # type: ignore[attr-defined]
    return done


def emit_kept(args: argparse.Namespace, kept: object, extra: dict | None = None) -> None:
    done = deliver(args, kept)
    info = {**kept.to_json(), **(extra or {}), "delivered": done}  # type: ignore[attr-defined]
    emit(
        args,
        info,
        "\n".join(
            [
                f"{info['kind']} version {info['version']} of {info['tenant']} signed and kept "
                f"({info['bytes']} bytes)",
                *done,
            ]
        ),
    )


def add_list_options(p: argparse.ArgumentParser) -> None:
    """What every command that signs a list for the tills takes."""
    add_db(p)
    add_json(p)
    p.add_argument("--key", metavar="FILE", help=f"the region's signing key (default: ${KEY_ENV})")
    p.add_argument("--tenant", required=True, help="whose tills the list is for")
    p.add_argument(
        "--version", type=whole_number, metavar="N", help="above the kept one (default: now in ms)"
    )
    add_delivery(p)


def add_delivery(p: argparse.ArgumentParser) -> None:
    """Where a signed list goes: a file for a USB stick, and/or the broker, retained."""
    p.add_argument("--out", metavar="FILE", help="also write the signed message here (USB)")
    p.add_argument("--broker", metavar="URL", help="also publish it retained (mqtt://HOST:PORT)")
    p.add_argument(
        "--username", default="tillbox-publisher", help="MQTT username (tillbox-publisher)"
    )
    p.add_argument(
        "--password-file", metavar="FILE", help=f"MQTT password (default: ${PASSWORD_ENV})"
    )
