"""``tillbox edge web`` and ``tillbox edge user add``: the console's commands.

Registered under ``tillbox edge`` through the ``tillbox.edge_commands`` entry point (the
edge loads the group and imports nothing of the console). Registering imports only
argparse helpers; the web framework is imported when a command runs, so a till without
the region extra still has a working ``tillbox edge`` (the handler says what to install).

Exit status: 0 done; 1 refused (a rule: the user exists, the password file is readable by
others, the port is taken, the database cannot be opened); 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cliutil import OneLineParser, a_number, add_json, emit
from appliance.errors import TillError
from edge.cliopts import add_db

if TYPE_CHECKING:
    import socket

KEY_ENV = "TILLBOX_REGION_KEY"  # the same variable `tillbox edge serve` reads
PASSWORD_FILE_LIMIT = 4096
PUBLISHER = "tillbox-publisher"  # the broker identity of edge/enrollment_cli.py


def listen_address(text: str) -> tuple[str, int]:
    """argparse ``type=``: ``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (for example 127.0.0.1:8080 or 0.0.0.0:8443)"
        )
    return host, int(port)


def read_password_file(path: str) -> str:
    """The password in ``path``: a private file (0600, like the keys), read bounded; the
    trailing newline an editor adds is not part of it."""
    from appliance.boundedio import read_text_bounded

    p = Path(path)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
    except OSError as exc:
        raise TillError(
            f"cannot read the password file {path} ({exc.strerror}); check the path"
        ) from None
    if mode & 0o077:
        raise TillError(
            f"the password file {path} can be read by others (mode {mode:04o}); "
            f"run `chmod 600 {path}` and try again"
        )
    text = read_text_bounded(p, PASSWORD_FILE_LIMIT, "password file")
    return text.rstrip("\r\n")


def _bind(host: str, port: int) -> socket.socket:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # that say they are TCP. With Nagle on, a response written as headers then body waits
    # for the client's delayed ACK: 40 ms more on every request (bench/console.py found it).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TillError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --listen "
            "address or stop what uses it"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _region_key_path(args: argparse.Namespace) -> str | None:
    from appliance.keys import load_signing_key

    path = args.key or os.environ.get(KEY_ENV)
    if not path:
        return None
    load_signing_key(Path(path))  # refuses a missing, unreadable or world-readable key now
    return path


def _publisher(args: argparse.Namespace) -> Any:
    """Where reviews are published (``--broker``, ``--publisher``, its password file), or
    None: checked now, so a wrong URL or an open password file stops the start."""
    if not args.broker:
        if args.publisher_password_file:
            raise TillError("--publisher-password-file goes with --broker URL; give both")
        return None
    from appliance.formats.brokerurl import BrokerURL
    from console.routes.enrollments import Publisher

    broker = BrokerURL.parse(args.broker)
    if not args.publisher_password_file:
        raise TillError(
            "--broker needs the publisher's password: --publisher-password-file FILE (0600)"
        )
    password = read_password_file(args.publisher_password_file)
    return Publisher(broker, args.publisher, password)


def cmd_web(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from console.app import create_app
    except ImportError as exc:
        raise TillError(
            f"the console needs the region packages ({exc.name} is missing); install them "
            "with pip install 'tillbox[region]'"
        ) from None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise TillError("--tls-cert and --tls-key go together; give both or neither")
    host, port = args.listen
    app = create_app(
        args.db,
        _region_key_path(args),
        secure_cookie=not args.insecure_cookie,
        silent_after_ms=int(args.silent_after * 60_000),
        publisher=_publisher(args),
        releases_dir=args.releases,
    )
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        log_level="info",
        access_log=args.access_log,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        proxy_headers=False,  # the client address is the peer's, unless a proxy is trusted
        server_header=False,
    )
    scheme = "https" if args.tls_cert else "http"
    print(f"console listening on {scheme}://{host}:{port}/", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again for the handler that
    # was there before it: ours, so that a stop (systemd, the tests) exits 0.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except _Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("console stopped", flush=True)
    return 0


class _Stopped(Exception):
    """SIGTERM after uvicorn's graceful shutdown."""


def _stopped(_signum: int, _frame: object) -> None:
    raise _Stopped()


def cmd_user_add(args: argparse.Namespace) -> int:
    from console import auth, tables
    from edge.store import Store

    password = read_password_file(args.password_file)
    store = Store.open(args.db)
    try:
        tables.ensure_schema(store)
        auth.add_user(
            store,
            args.name,
            args.role,
            password,
            args.tenant,
            tuple(args.event or ()),
            tuple(args.stall or ()),
            replace=args.replace,
        )
    finally:
        store.close()
    info = {"name": args.name, "role": args.role, "tenant": args.tenant}
    where = f" of tenant {args.tenant}" if args.tenant else ""
    emit(args, info, f"user {args.name} added: {args.role}{where}")
    return 0


def positive_minutes(text: str) -> float:
    value = a_number(text, "minutes")
    if not 0 < value <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError("minutes must be above 0 and at most a week (10080)")
    return value


def register(cmds: argparse._SubParsersAction) -> None:
    """Add ``web`` and ``user`` under ``tillbox edge``."""
    from console.scope import ROLES

    p = cmds.add_parser("web", help="serve the region's web console (pages and /api/v1)")
    add_db(p)
    p.add_argument(
        "--listen",
        required=True,
        type=listen_address,
        metavar="HOST:PORT",
        help="address to serve on, e.g. 127.0.0.1:8080",
    )
    p.add_argument(
        "--key",
        metavar="FILE",
        help=f"the region's signing key (its fingerprint is shown to admins; default: ${KEY_ENV})",
    )
    p.add_argument(
        "--silent-after",
        type=positive_minutes,
        default=15.0,
        metavar="MIN",
        help="flag a till not heard for this many minutes (default 15)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key")
    p.add_argument(
        "--insecure-cookie",
        action="store_true",
        help="session cookie without the Secure flag: only for a plain-HTTP demo on a LAN "
        "(browsers keep Secure cookies on http://127.0.0.1 and localhost anyway)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--releases",
        metavar="DIR",
        help="serve this folder's update bundles (*.raucb) at /releases/NAME to the tills, "
        "no login (the bundles are signed; `tillbox edge release publish --url`)",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="the region broker (mqtt://HOST:PORT): enrollment decisions are published to "
        "the tills at once (otherwise kept, and sent with `tillbox edge enrollment publish`)",
    )
    p.add_argument(
        "--publisher",
        default=PUBLISHER,
        metavar="NAME",
        help=f"the broker identity that may write to the tills' down topics (default {PUBLISHER})",
    )
    p.add_argument(
        "--publisher-password-file",
        metavar="FILE",
        help="a file (mode 0600) holding the publisher's password",
    )
    p.set_defaults(handler=cmd_web)

    user = cmds.add_parser("user", help="console users (sign-in names, roles, scopes)")
    actions = user.add_subparsers(
        dest="user_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = actions.add_parser("add", help="add a console user with a role and a password file")
    add_db(p)
    p.add_argument("--name", required=True, help="sign-in name (letters, digits, - _)")
    p.add_argument("--role", required=True, choices=ROLES, help=" | ".join(ROLES))
    p.add_argument("--tenant", metavar="T", help="the merchant's tenant (merchants only)")
    p.add_argument(
        "--event", action="append", metavar="E", help="an event a promoter sees (repeatable)"
    )
    p.add_argument(
        "--stall", action="append", metavar="S", help="a stall an inspector sees (repeatable)"
    )
    p.add_argument(
        "--password-file",
        required=True,
        metavar="FILE",
        help="a file (mode 0600) holding the password, 10 or more characters",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="if the user exists, set their role, scope and password anew (ends their sessions)",
    )
    add_json(p)
    p.set_defaults(handler=cmd_user_add)
