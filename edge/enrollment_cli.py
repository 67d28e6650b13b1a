"""``tillbox edge enrollment ...`` and ``tillbox edge inspect-package``: onboarding review
and the region's inspection package, from the command line (the console calls the same
library functions: edge/enrollments.py, edge/review.py, edge/inspection_package.py)."""

from __future__ import annotations

import argparse
import time

from appliance.cliutil import OneLineParser, add_json, emit
from edge.cliopts import add_db as _add_db

PUBLISHER = "tillbox-publisher"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_import(args: argparse.Namespace) -> int:
    from appliance.boundedio import ENROLLMENT_EXPORT_LIMIT, read_bounded
    from edge.cliopts import open_store as _open_store
    from edge.enrollments import import_enrollment

    data = read_bounded(args.file, ENROLLMENT_EXPORT_LIMIT, "enrollment export")
    store = _open_store(args)
    try:
        record = import_enrollment(store, data, _now_ms())
    finally:
        store.close()
    state = "already imported" if record.already_imported else "imported"
    m = record.manifest
    emit(
        args,
        record.to_json(),
        f"{state}: enrollment {record.sequence} of device {record.device_id} (tenant "
        f"{record.tenant}), {m['business']['name']} (operator {m['operator']['name']}), "
        f"{len(m['permits'])} permit(s), {len(m['photos'])} photo(s), signature and "
        f"{len(record.media)} file hash(es) verified; status {record.status}\n"
        f"manifest sha256 {record.manifest_sha256}",
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from edge.cliopts import open_store as _open_store
    from edge.enrollments import list_enrollments

    store = _open_store(args)
    try:
        records = list_enrollments(store, args.tenant)
    finally:
        store.close()
    lines = [f"{'device':<20} {'tenant':<12} {'no':>3} {'status':<9} business / review"]
    for r in records:
        review = ""
        if r.review is not None:
            review = f" / {r.review.reviewer} {_day(r.review.decided_ms)}: {r.review.reason}"
        lines.append(
            f"{r.device_id:<20} {r.tenant:<12} {r.sequence:>3} {r.status:<9} "
            f"{r.manifest['business']['name']}{review}"
        )
    if not records:
        lines.append("no enrollment imported yet (`tillbox edge enrollment import`)")
    emit(args, {"enrollments": [r.to_json() for r in records]}, "\n".join(lines))
    return 0


def _publish(args: argparse.Namespace, record: object) -> dict:
    from appliance.formats.brokerurl import BrokerURL
    from edge.cliopts import password as _password
    from edge.review import publish_review

    broker = BrokerURL.parse(args.broker)
    return publish_review(
        broker, broker.username or args.username, broker.password or _password(args), record
    )


def cmd_review(args: argparse.Namespace) -> int:
    from edge.cliopts import open_store as _open_store
    from edge.cliopts import region_key as _region_key
    from edge.review import review_enrollment

    key = _region_key(args)
    store = _open_store(args)
    try:
        record = review_enrollment(
            store,
            args.device,
            "approve" if args.approve else "reject",
            args.reason,
            args.reviewer,
            key,
            _now_ms(),
        )
    finally:
        store.close()
    info = record.to_json()
    verb = "approved" if record.decision == "approve" else "rejected"
    text = (
        f"enrollment of {record.device_id} {verb} by {record.reviewer} at "
        f"{_day(record.decided_ms)}, signed by the region key"
    )
    if args.broker:
        info["published"] = _publish(args, record)
        text += f"; published retained on {record.topic}"
    else:
        text += (
            "; not sent yet: publish it with `tillbox edge enrollment publish --db URL "
            f"--device {record.device_id} --broker URL`"
        )
    emit(args, info, text)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from edge.cliopts import open_store as _open_store
    from edge.review import latest_review

    store = _open_store(args)
    try:
        record = latest_review(store, args.device)
    finally:
        store.close()
    info = {**record.to_json(), "published": _publish(args, record)}
    emit(
        args, info, f"review of {record.device_id} ({record.decision}) published on {record.topic}"
    )
    return 0


def cmd_inspect_package(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge.cliopts import open_store as _open_store
    from edge.cliopts import region_key as _region_key
    from edge.inspection_package import build_package

    key = _region_key(args)
    store = _open_store(args)
    try:
        result = build_package(store, args.device, key, Path(args.out), args.nonce, _now_ms())
    finally:
        store.close()
    emit(
        args,
        result,
        f"region inspection package written to {result['path']}: device {result['device_id']}, "
        f"{result['events']} events (seq 1-{result['last_seq']}), {result['enrollments']} "
        f"enrollment(s), {result['files']} files, {result['bytes']} bytes, signed by the "
        f"region key\nsha256 {result['sha256']}",
    )
    return 0


def _add_publish(p: argparse.ArgumentParser, required: bool) -> None:
    from edge.cliopts import PASSWORD_ENV

    p.add_argument(
        "--broker",
        required=required,
        metavar="URL",
        help="the region broker (mqtt://HOST:PORT): publish the signed decision, retained",
    )
    p.add_argument("--username", default=PUBLISHER, help=f"MQTT username (default: {PUBLISHER})")
    p.add_argument(
        "--password-file", metavar="FILE", help=f"MQTT password (default: ${PASSWORD_ENV})"
    )


def register(cmds: argparse._SubParsersAction) -> None:
    """Add ``tillbox edge enrollment ...`` and ``tillbox edge inspect-package``."""
    from edge.cliopts import KEY_ENV

    enrollment = cmds.add_parser(
        "enrollment", help="tills' enrollments at the region: import, list, review, publish"
    )
    sub = enrollment.add_subparsers(
        dest="enrollment_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )

    p = sub.add_parser(
        "import",
        help="import a till's enrollment export (signature, manifest and every file's "
        "hash checked against the device key the region holds)",
    )
    _add_db(p)
    add_json(p)
    p.add_argument("file", help="the file `tillbox enrollment export --out FILE` wrote")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("list", help="the imported enrollments and their review status")
    _add_db(p)
    add_json(p)
    p.add_argument("--tenant", help="only this tenant's")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser(
        "review",
        help="approve or reject a device's latest enrollment; signed by the region key, "
        "published retained to the till with --broker",
    )
    _add_db(p)
    add_json(p)
    p.add_argument("--device", required=True, metavar="ID", help="the device id")
    choice = p.add_mutually_exclusive_group(required=True)
    choice.add_argument("--approve", action="store_true", help="approve the enrollment")
    choice.add_argument("--reject", action="store_true", help="reject the enrollment")
    p.add_argument(
        "--reason", required=True, metavar="TEXT", help="why (one line, shown on the till)"
    )
    p.add_argument("--reviewer", required=True, metavar="NAME", help="who decided")
    p.add_argument("--key", metavar="FILE", help=f"the region's signing key (default: ${KEY_ENV})")
    _add_publish(p, required=False)
    p.set_defaults(handler=cmd_review)

    p = sub.add_parser("publish", help="publish a device's latest review again (retained)")
    _add_db(p)
    add_json(p)
    p.add_argument("--device", required=True, metavar="ID", help="the device id")
    _add_publish(p, required=True)
    p.set_defaults(handler=cmd_publish)

    p = cmds.add_parser(
        "inspect-package",
        help="an inspection package built by the region from what it stored, signed by "
        "the region key, for `tillbox inspect verify`",
    )
    _add_db(p)
    add_json(p)
    p.add_argument("--device", required=True, metavar="ID", help="the device id")
    p.add_argument(
        "--nonce",
        required=True,
        metavar="TEXT",
        help="the inspector's challenge (1-200 printable characters), signed into the package",
    )
    p.add_argument("--key", metavar="FILE", help=f"the region's signing key (default: ${KEY_ENV})")
    p.add_argument("--out", required=True, metavar="FILE", help="the package .zip to write")
    p.set_defaults(handler=cmd_inspect_package)
