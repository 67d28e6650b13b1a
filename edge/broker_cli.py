"""``tillbox edge broker ...``: create the region broker's identities (devices, workers).

``init`` writes the dynamic-security plugin's file with the broker admin (before the
broker first starts); ``add-device``, ``add-worker`` and ``add-publisher`` add an
identity to the running broker as that admin. Passwords only ever come from files.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from appliance.cliutil import OneLineParser, add_json, emit

if TYPE_CHECKING:
    from edge.identities import Identity

ADMIN_USER = "tillbox-broker-admin"


def _read_secret(path: str, what: str) -> str:
    from appliance.boundedio import TEXT_FILE_LIMIT, read_text_bounded
    from appliance.errors import TillError

    secret = read_text_bounded(path, TEXT_FILE_LIMIT, what).strip()
    if not secret:
        raise TillError(f"{what} {path} is empty; put the password in it (one line)")
    return secret


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge import identities

    path = Path(args.config)
    password = _read_secret(args.admin_password_file, "--admin-password-file")
    identities.write_initial_config(path, args.admin_user, password)
    emit(
        args,
        {"config": str(path), "admin_user": args.admin_user},
        f"broker identities file {path} written (admin {args.admin_user}); point "
        "plugin_opt_config_file at it and start mosquitto",
    )
    return 0


def _add(args: argparse.Namespace, identity: Identity) -> int:
    from appliance.formats.brokerurl import BrokerURL
    from edge import identities

    password = _read_secret(args.password_file, "--password-file")
    admin_password = _read_secret(args.admin_password_file, "--admin-password-file")
    control = identities.Control(
        BrokerURL.parse(args.broker), args.admin_user, admin_password, args.tls_ca or ""
    )
    info = control.add(identity, password)
    emit(
        args,
        info,
        f"broker identity {info['username']} ({info['kind']}) added; it logs in with that "
        "username and password, and its client id is its username",
    )
    return 0


def cmd_add_device(args: argparse.Namespace) -> int:
    from edge import identities

    return _add(args, identities.device(args.tenant, args.device_id))


def cmd_add_worker(args: argparse.Namespace) -> int:
    from edge import identities

    return _add(args, identities.worker(args.name))


def cmd_add_publisher(args: argparse.Namespace) -> int:
    from edge import identities

    return _add(args, identities.publisher(args.name))


def _admin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-user", default=ADMIN_USER, help=f"the broker admin (default: {ADMIN_USER})"
    )
    p.add_argument(
        "--admin-password-file", required=True, metavar="FILE", help="the admin's password"
    )


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker", required=True, metavar="URL", help="mqtt://127.0.0.1:1883 (the region's)"
    )
    p.add_argument("--tls-ca", metavar="FILE", help="CA file for mqtts://")
    _admin_options(p)
    p.add_argument(
        "--password-file", required=True, metavar="FILE", help="the new identity's password"
    )
    add_json(p)


def register(cmds: argparse._SubParsersAction) -> None:
    """Add ``tillbox edge broker`` and its subcommands."""
    broker = cmds.add_parser("broker", help="create the region broker's identities")
    sub = broker.add_subparsers(
        dest="broker_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )

    p = sub.add_parser("init", help="write the broker's identities file with its admin")
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="e.g. /var/lib/mosquitto/dynamic-security.json (must not exist yet)",
    )
    _admin_options(p)
    add_json(p)
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("add-device", help="a till's login, bound to its tenant and id")
    _add_options(p)
    p.add_argument("--tenant", required=True, help="the till's tenant")
    p.add_argument("--device-id", required=True, metavar="ID", help="the till's device id")
    p.set_defaults(handler=cmd_add_device)

    p = sub.add_parser("add-worker", help="an ingest worker's login (one per worker)")
    _add_options(p)
    p.add_argument("--name", required=True, help="e.g. tillbox-edge-1 (its client id)")
    p.set_defaults(handler=cmd_add_worker)

    p = sub.add_parser("add-publisher", help="the login that publishes region updates")
    _add_options(p)
    p.add_argument("--name", default="tillbox-publisher", help="(default: tillbox-publisher)")
    p.set_defaults(handler=cmd_add_publisher)
