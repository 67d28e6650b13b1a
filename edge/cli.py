"""``tillbox edge ...``: the region's ingest service and its operator commands."""

from __future__ import annotations

import argparse

from appliance.cliutil import OneLineParser, a_number, add_json, emit, whole_number
from edge import broker_cli, enrollment_cli, release_cli
from edge.cliopts import KEY_ENV, PASSWORD_ENV
from edge.cliopts import add_db as _add_db
from edge.cliopts import add_delivery as _add_delivery
from edge.cliopts import add_list_options as _add_list_options
from edge.cliopts import deliver as _deliver
from edge.cliopts import emit_kept as _emit_kept
from edge.cliopts import open_store as _open_store
from edge.cliopts import password as _password
from edge.cliopts import region_key as _region_key


def _setup_logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


# -- handlers ------------------------------------------------------------------------------
def cmd_enroll(args: argparse.Namespace) -> int:
    from appliance.keys import load_verify_key
    from edge import admin

    key = load_verify_key(args.public_key)
    signer = _roster_key(args)
    store = _open_store(args)
    try:
        info = admin.enroll(store, args.device_id, key, args.tenant)
        done = f"device {args.device_id} enrolled"
        roster = _follow_roster(args, store, signer, args.tenant, done)
    finally:
        store.close()
    state = "already enrolled" if info["already_enrolled"] else "enrolled"
    _emit_with_roster(
        args, info, f"{state}: device {info['device_id']} (tenant {info['tenant']})", roster
    )
    return 0


# -- the roster follows the devices (enroll, revoke, a stall moved) ------------------------
def _roster_key(args: argparse.Namespace) -> object | None:
    """The region key when the roster is to be published (--broker); checked before the
    change is made, so a missing key changes nothing."""
    return _region_key(args) if getattr(args, "broker", None) else None


def _follow_roster(
    args: argparse.Namespace, store: object, key: object | None, tenant: str, what: str
) -> dict:
    """With --broker: sign the tenant's roster again if the change altered it, and
    publish the kept roster retained (the tills learn the change); without: say how."""
    if key is None:
        return {
            "published": False,
            "delivered": [
                f"the tills learn it from the next roster: `tillbox edge roster publish "
                f"--db URL --tenant {tenant} --broker URL` (or give --broker here)"
            ],
        }
    from appliance.errors import TillError
    from edge import regionlists

    fresh = regionlists.refresh_roster(store, key, tenant)  # type: ignore[arg-type]
    kept = fresh or regionlists.kept(store, tenant, "roster")  # type: ignore[arg-type]
    assert kept is not None
    try:
        done = _deliver(args, kept)
    except TillError as exc:
        raise TillError(
            f"{what}, but its roster (version {kept.version}) was not published: {exc}; "
            f"publish it with `tillbox edge roster publish --db URL --tenant {tenant} "
            "--broker URL`"
        ) from None
    return {
        **kept.to_json(),
        "published": True,
        "signed": fresh is not None,
        "delivered": [
            f"roster version {kept.version} " + ("signed" if fresh else "unchanged"),
            *done,
        ],
    }


def _emit_with_roster(args: argparse.Namespace, info: dict, text: str, roster: dict) -> None:
    emit(args, {**info, "roster": roster}, "\n".join([text, *roster["delivered"]]))


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(args)


def serve(args: argparse.Namespace, **options: bool) -> int:
    """``edge serve``; ``options`` set ServeOptions' switches (bench/drain.py's baseline)."""
    from appliance.formats.brokerurl import BrokerURL
    from edge.service import EdgeService, ServeOptions

    _setup_logging(args.verbose)
    key = _region_key(args)
    broker = BrokerURL.parse(args.broker)
    opts = ServeOptions(
        broker=broker,
        username=broker.username or args.username,
        password=broker.password or _password(args),
        # the broker binds the client id to the login; sending the same avoids surprises
        client_id=args.client_id or broker.username or args.username,
        tls_ca=args.tls_ca or "",
        max_segment_bytes=args.max_segment_bytes,
        stock_interval_s=args.stock_interval,
        **options,
    )
    store = _open_store(args)
    try:
        return EdgeService(store, key, opts).run(duration_s=args.duration)
    finally:
        store.close()


def cmd_stats(args: argparse.Namespace) -> int:
    from edge import admin

    store = _open_store(args)
    try:
        info = admin.stats(store)
    finally:
        store.close()
    lines = [f"{'device':<20} {'stored':>9} {'last seq':>9} {'rejected':>9} {'dups':>9}"]
    for d in info["devices"]:
        lines.append(
            f"{d['device_id']:<20} {d['events_stored']:>9} {d['last_seq']:>9} "
            f"{d['segments_rejected']:>9} {d['duplicates_dropped']:>9}"
        )
    for reason, count in sorted(info["rejected"].items()):
        lines.append(f"rejected {reason}: {count}")
    for flag in info["stock_flags"]:
        lines.append(
            f"stock below zero: {flag['tenant']}/{flag['sku']} = {flag['qty_after']} "
            f"after {flag['device_id']} seq {flag['seq']}"
        )
    emit(args, info, "\n".join(lines))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from appliance.errors import IntegrityError
    from edge import admin

    store = _open_store(args)
    try:
        info = admin.check(store)
    finally:
        store.close()
    emit(
        args,
        info,
        "ledgers and rollups match a recomputation from the stored events"
        if info["ok"]
        else "\n".join(info["problems"]),
    )
    if not info["ok"]:
        raise IntegrityError(
            "the ledgers or rollups differ from a recomputation from stored events; "
            "keep the database for analysis and report it"
        )
    return 0


def cmd_device_revoke(args: argparse.Namespace) -> int:
    from edge import admin

    signer = _roster_key(args)
    store = _open_store(args)
    try:
        info = admin.revoke(store, args.device, args.reason)
        tenant = admin.device_tenant(store, args.device)
        roster = _follow_roster(args, store, signer, tenant, f"device {args.device} revoked")
    finally:
        store.close()
    when = _when(info["revoked_ms"])
    text = (
        f"device {info['device_id']} was already revoked on {when} ({info['reason']})"
        if info["already_revoked"]
        else f"device {info['device_id']} revoked on {when}: its segments and health "
        "messages are refused from now on (take its broker login off too)"
    )
    _emit_with_roster(args, info, text, roster)
    return 0


def cmd_device_list(args: argparse.Namespace) -> int:
    from edge import admin

    store = _open_store(args)
    try:
        devices = admin.devices(store)
    finally:
        store.close()
    lines = [
        f"{'device':<20} {'tenant':<12} {'stall':<16} {'label':<16} {'last seq':>9} "
        f"{'last seen':<17} state"
    ]
    for d in devices:
        seen = _when(d["last_seen_ms"]) if d["last_seen_ms"] is not None else "never"
        state = f"REVOKED {_when(d['revoked_ms'])}: {d['revoked_reason']}" if d["revoked"] else "ok"
        lines.append(
            f"{d['device_id']:<20} {d['tenant']:<12} {d['stall'][:16]:<16} {d['label'][:16]:<16} "
            f"{d['last_seq']:>9} {seen:<17} {state}"
        )
    if not devices:
        lines.append("no devices enrolled (`tillbox edge enroll`)")
    emit(args, {"devices": devices}, "\n".join(lines))
    return 0


def cmd_device_set(args: argparse.Namespace) -> int:
    from edge import admin

    signer = _roster_key(args)
    if signer is not None and args.stall:
        from appliance.identifiers import check_identifier

        check_identifier(args.stall, "--stall (it goes in the tills' roster)")
    store = _open_store(args)
    try:
        info = admin.set_profile(store, args.device, args.stall, args.label)
        tenant = admin.device_tenant(store, args.device)
        roster = _follow_roster(args, store, signer, tenant, f"device {args.device} set")
    finally:
        store.close()
    _emit_with_roster(
        args,
        info,
        f"device {info['device_id']}: stall {info['stall']!r}, label {info['label']!r}",
        roster,
    )
    return 0


def _seconds(text: str) -> float:
    value = a_number(text, "seconds")
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} must be from 0 to 86400 seconds")
    return value


def _when(ms: int) -> str:
    """A time the operator reads: UTC, to the minute."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from appliance.keys import generate

    out = Path(args.out)
    verify = generate(out, out.with_suffix(".pub"))
    info = {
        "private_key_path": str(out),
        "public_key_path": str(out.with_suffix(".pub")),
        "public_key": verify.encode().hex(),
    }
    emit(
        args,
        info,
        f"region key written to {out}\npublic key {info['public_key']} (put it "
        "in every till's [sync] region_public_key)",
    )
    return 0


def cmd_stock_set(args: argparse.Namespace) -> int:
    from edge import admin

    store = _open_store(args)
    try:
        delta = admin.stock_set(store, args.tenant, args.sku, args.qty)
    finally:
        store.close()
    emit(
        args,
        {"tenant": args.tenant, "sku": args.sku, "qty": args.qty, "delta": delta},
        f"stock of {args.sku} set to {args.qty} ({delta:+d})",
    )
    return 0


def cmd_publish_update(args: argparse.Namespace) -> int:
    from appliance.catalog import read_catalog_file
    from appliance.formats.brokerurl import BrokerURL
    from edge.publish import publish_update

    data = read_catalog_file(args.catalog)
    broker = BrokerURL.parse(args.broker)
    info = publish_update(
        broker,
        broker.username or args.username,
        broker.password or _password(args),
        _region_key(args),
        args.tenant,
        data,
        args.version,
    )
    emit(
        args,
        info,
        f"catalog version {info['version']} published to {info['topic']} "
        f"({info['bytes']} bytes, retained)",
    )
    return 0


# -- the region's lists for the tills and reconciliation (issue 15) ------------------------
def cmd_event_publish(args: argparse.Namespace) -> int:
    import json

    from appliance.boundedio import TEXT_FILE_LIMIT, read_text_bounded
    from appliance.errors import TillError
    from appliance.identifiers import check_identifier
    from edge import regionlists

    check_identifier(args.tenant, "tenant")
    text = read_text_bounded(args.file, TEXT_FILE_LIMIT, "events file")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TillError(f"{args.file} is not JSON ({exc}); give the events as JSON") from None
    key = _region_key(args)
    store = _open_store(args)
    try:
        kept = regionlists.publish_schedule(store, key, args.tenant, data, args.version)
    finally:
        store.close()
    _emit_kept(args, kept)
    return 0


def cmd_roster_publish(args: argparse.Namespace) -> int:
    from appliance.identifiers import check_identifier
    from edge import regionlists

    check_identifier(args.tenant, "tenant")
    key = _region_key(args)
    store = _open_store(args)
    try:
        kept = regionlists.publish_roster(store, key, args.tenant, args.version)
    finally:
        store.close()
    _emit_kept(args, kept)
    return 0


def _booking_item(text: str) -> dict:
    sku, _, rest = text.partition(":")
    qty, _, engraving = rest.partition(":")
    if not sku:
        raise argparse.ArgumentTypeError(f"{text!r} must be SKU[:QTY[:ENGRAVING TEXT]]")
    item: dict = {"sku": sku, "qty": whole_number(qty) if qty else 1}
    if engraving:
        item["engraving"] = engraving
    return item


def cmd_booking_add(args: argparse.Namespace) -> int:
    from appliance.identifiers import check_identifier
    from edge import regionlists

    check_identifier(args.tenant, "tenant")
    booking: dict = {"name": args.name, "payment": args.payment, "items": args.item}
    for key_name in ("id", "number", "stall"):
        if getattr(args, key_name) is not None:
            booking[key_name] = getattr(args, key_name)
    key = _region_key(args)
    store = _open_store(args)
    try:
        kept, added, qr = regionlists.add_booking(store, key, args.tenant, booking, args.version)
    finally:
        store.close()
    _emit_kept(args, kept, {"booking": added.to_json(), "qr": qr})
    if not args.json:
        print(f"booking {added.number} ({added.name}): id {added.id}\nQR {qr}")
    return 0


def cmd_booking_list(args: argparse.Namespace) -> int:
    from edge import regionlists

    key = _region_key(args)
    store = _open_store(args)
    try:
        kept = regionlists.kept_bookings(store, key, args.tenant)
    finally:
        store.close()
    rows = kept.to_json()["bookings"]
    emit(
        args,
        {"tenant": args.tenant, "bookings": rows},
        "\n".join(f"{b['number']:>6}  {b['name']:<24} {b['payment']}  {b['id']}" for b in rows)
        or "no bookings",
    )
    return 0


def cmd_booking_publish(args: argparse.Namespace) -> int:
    """Send the tenant's kept bookings list again (after the console or an add could not
    reach the broker): the same signed bytes, to --out and/or --broker."""
    from appliance.errors import TillError
    from appliance.formats.region import BOOKINGS
    from edge import regionlists

    store = _open_store(args)
    try:
        kept = regionlists.kept(store, args.tenant, BOOKINGS)
    finally:
        store.close()
    if kept is None:
        raise TillError(
            f"no bookings are kept for {args.tenant}; add one with `tillbox edge booking add`"
        )
    if not (args.out or args.broker):
        raise TillError("say where to send the list: --broker URL and/or --out FILE")
    _emit_kept(args, kept)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from edge import reconcile

    store = _open_store(args)
    try:
        report = reconcile.from_store(store).to_json()
    finally:
        store.close()
    emit(args, report, "\n".join(reconcile_lines(report)))
    return 0  # flags are the merchant's to act on, not a failure of the command


def reconcile_lines(report: dict) -> list[str]:
    """``tillbox edge reconcile``'s text: a summary, then one line per flag, per refund
    still waiting for its sale and per event left out (``--json`` has every field)."""

    def refund(r: dict) -> str:
        where = " at another till" if r["cross_till"] else ""
        return (
            f"{r['device']} receipt {r['receipt_no']} (seq {r['seq']}, {r['gross_minor']}{where})"
        )

    lines = [
        f"refunds linked to their sale: {report['refunds_linked']}, waiting for their sale: "
        f"{report['refunds_pending']}; flags: {report['flags']}"
    ]
    for f in report["over_refunds"]:
        sale = f["sale"]
        units = ", ".join(f"{sku} {n} more than sold" for sku, n in f["over_qty"].items())
        lines.append(
            f"over-refund: sale {sale['device']} receipt {sale['receipt_no']} (seq "
            f"{sale['seq']}) sold {f['sold_minor']}, refunded {f['refunded_minor']} by "
            + ", ".join(refund(r) for r in f["refunds"])
            + f": {f['over_minor']} over"
            + (f"; {units}" if units else "")
        )
    for f in report["ref_mismatches"]:
        lines.append(
            f"refund {refund(f['refund'])} names sale {f['sale']['device']} receipt "
            f"{f['sale']['receipt_no']} with another event hash"
        )
    for f in report["double_redemptions"]:
        where = ", ".join(
            f"{r['device']} seq {r['seq']} ({r['payment']}, due {r['due_minor']}"
            + (f", receipt {r['receipt_no']})" if r["receipt_no"] else ")")
            for r in f["redemptions"]
        )
        lines.append(
            f"booking {f['booking_number']} redeemed {len(f['redemptions'])} times: {where}; "
            f"booking id {f['booking_id']}"
        )
    for f in report["negative_stock"]:
        lines.append(
            f"stock below zero: {f['tenant']}/{f['sku']} = {f['qty_after']} after "
            f"{f['device_id']} seq {f['seq']}"
        )
    for f in report["pending"]:
        sale = f["sale"]
        named = (
            f"{sale['device']} receipt {sale['receipt_no']}"
            if "receipt_no" in sale
            else f"{sale['sale_id']} of {sale['device']}"
        )
        lines.append(f"waiting: refund {refund(f['refund'])} for sale {named} (not stored yet)")
    for f in report["unreadable"]:
        lines.append(f"unreadable: {f['device']} seq {f['seq']} ({f['type']}) left out")
    return lines


def _add_broker(p: argparse.ArgumentParser, username: str) -> None:
    p.add_argument("--broker", required=True, metavar="URL", help="mqtt://HOST:PORT")
    p.add_argument("--username", default=username, help=f"MQTT username (default: {username})")
    p.add_argument(
        "--password-file", metavar="FILE", help=f"MQTT password (default: ${PASSWORD_ENV})"
    )
    p.add_argument("--key", metavar="FILE", help=f"the region's signing key (default: ${KEY_ENV})")


def _add_roster_broker(p: argparse.ArgumentParser) -> None:
    """What a command that changes the tenant's devices takes to tell the tills."""
    p.add_argument(
        "--broker",
        metavar="URL",
        help="also sign the tenant's roster again and publish it retained (mqtt://HOST:PORT)",
    )
    p.add_argument(
        "--username", default="tillbox-publisher", help="MQTT username (tillbox-publisher)"
    )
    p.add_argument(
        "--password-file", metavar="FILE", help=f"MQTT password (default: ${PASSWORD_ENV})"
    )
    p.add_argument(
        "--key", metavar="FILE", help=f"the region's signing key, with --broker (${KEY_ENV})"
    )


def _register_device(cmds: argparse._SubParsersAction) -> None:
    """``tillbox edge device revoke|list|set``."""
    device = cmds.add_parser("device", help="revoke a device, list devices, set stall and label")
    actions = device.add_subparsers(
        dest="device_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = actions.add_parser(
        "revoke", help="refuse a device's segments and health messages from now on"
    )
    _add_db(p)
    add_json(p)
    p.add_argument("--device", required=True, metavar="ID")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (kept with the device)")
    _add_roster_broker(p)
    p.set_defaults(handler=cmd_device_revoke)

    p = actions.add_parser("list", help="each device: tenant, stall, label, last seen, revoked")
    _add_db(p)
    add_json(p)
    p.set_defaults(handler=cmd_device_list)

    p = actions.add_parser("set", help="set a device's stall and label (the console shows them)")
    _add_db(p)
    add_json(p)
    p.add_argument("--device", required=True, metavar="ID")
    p.add_argument("--stall", metavar="S", help="the stall it serves (unchanged if omitted)")
    p.add_argument("--label", metavar="L", help="a label for people (unchanged if omitted)")
    _add_roster_broker(p)
    p.set_defaults(handler=cmd_device_set)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tillbox edge`` and its subcommands."""
    edge = sub.add_parser("edge", help="the region's ingest service (MQTT to SQL)")
    cmds = edge.add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )

    p = cmds.add_parser("enroll", help="register a till's public key")
    _add_db(p)
    add_json(p)
    p.add_argument("--device-id", required=True, metavar="ID")
    p.add_argument(
        "--public-key",
        required=True,
        metavar="HEX_OR_FILE",
        help="64 hex digits, or the till's keys/device.pub",
    )
    p.add_argument("--tenant", default="demo", help="the till's tenant (default: demo)")
    _add_roster_broker(p)
    p.set_defaults(handler=cmd_enroll)

    p = cmds.add_parser("serve", help="ingest segments from the broker (one worker)")
    _add_db(p)
    _add_broker(p, "tillbox-edge-1")
    p.add_argument(
        "--client-id",
        help="MQTT client id (default: the username; the broker binds it to the login)",
    )
    p.add_argument("--tls-ca", metavar="FILE", help="CA file for mqtts://")
    p.add_argument("--max-segment-bytes", type=int, default=8 * 1024 * 1024, metavar="N")
    p.add_argument(
        "--stock-interval",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="publish the stalls' stock snapshots at most every S seconds (0: never; 10)",
    )
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--verbose", action="store_true", help="debug logging")
    p.set_defaults(handler=cmd_serve)

    p = cmds.add_parser("stats", help="per device: stored, last seq, rejected, duplicates")
    _add_db(p)
    add_json(p)
    p.set_defaults(handler=cmd_stats)

    p = cmds.add_parser("check", help="recompute the ledgers from stored events and compare")
    _add_db(p)
    add_json(p)
    p.set_defaults(handler=cmd_check)

    _register_device(cmds)

    p = cmds.add_parser("keygen", help="create the region's signing key pair")
    p.add_argument("--out", required=True, metavar="FILE", help="private key file (0600)")
    add_json(p)
    p.set_defaults(handler=cmd_keygen)

    p = cmds.add_parser("stock-set", help="set a counted stock level (the SKU is then tracked)")
    _add_db(p)
    add_json(p)
    p.add_argument("--tenant", default="demo")
    p.add_argument("--sku", required=True)
    p.add_argument("--qty", required=True, type=whole_number)
    p.set_defaults(handler=cmd_stock_set)

    p = cmds.add_parser("publish-update", help="sign and publish a catalog to a tenant's tills")
    _add_broker(p, "tillbox-publisher")
    add_json(p)
    p.add_argument("--tenant", default="demo")
    p.add_argument("--catalog", required=True, metavar="FILE", help="catalog JSON")
    p.add_argument(
        "--version",
        type=int,
        metavar="N",
        help="increasing version (default: the current time in ms)",
    )
    p.set_defaults(handler=cmd_publish_update)
    event = cmds.add_parser("event", help="the tenants' event schedules").add_subparsers(
        dest="list_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = event.add_parser("publish", help="sign and keep a tenant's event schedule")
    _add_list_options(p)
    p.add_argument("--file", required=True, metavar="EVENTS.json", help='{"events": [...]}')
    p.set_defaults(handler=cmd_event_publish)

    roster = cmds.add_parser("roster", help="the tenants' device rosters").add_subparsers(
        dest="list_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = roster.add_parser("publish", help="sign and keep the roster of a tenant's devices")
    _add_list_options(p)
    p.set_defaults(handler=cmd_roster_publish)

    booking = cmds.add_parser("booking", help="bookings for the stalls").add_subparsers(
        dest="list_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = booking.add_parser("add", help="add a booking to a tenant's signed list")
    _add_list_options(p)
    p.add_argument("--name", required=True, help="the name it is booked under")
    p.add_argument("--payment", required=True, choices=["paid_online", "pay_at_pickup"])
    p.add_argument(
        "--item",
        action="append",
        required=True,
        type=_booking_item,
        metavar="SKU[:QTY[:ENGRAVING]]",
        help="an item; with engraving text for a personalised one; repeat for more",
    )
    p.add_argument("--id", help="the booking id (default: a new UUID)")
    p.add_argument("--number", type=whole_number, help="its number (default: the next)")
    p.add_argument("--stall", help="the stall that hands it over (default: any)")
    p.set_defaults(handler=cmd_booking_add)
    p = booking.add_parser("list", help="a tenant's kept bookings")
    _add_db(p)
    add_json(p)
    p.add_argument("--key", metavar="FILE", help=f"the region's signing key (default: ${KEY_ENV})")
    p.add_argument("--tenant", required=True)
    p.set_defaults(handler=cmd_booking_list)
    p = booking.add_parser("publish", help="send a tenant's kept bookings list again")
    _add_db(p)
    add_json(p)
    p.add_argument("--tenant", required=True)
    _add_delivery(p)
    p.set_defaults(handler=cmd_booking_publish)

    p = cmds.add_parser(
        "reconcile", help="link refunds to sales across tills; over-refunds, double redemptions"
    )
    _add_db(p)
    add_json(p)
    p.set_defaults(handler=cmd_reconcile)
    broker_cli.register(cmds)
    enrollment_cli.register(cmds)
    release_cli.register(cmds)
    # `tillbox edge web`, `tillbox edge user ...`: the console registers them through an
    # entry point (the edge must not import the layer above it); isolated like any plugin
    from appliance.plugins import EDGE_GROUP, load_command_plugins

    load_command_plugins(cmds, group=EDGE_GROUP)
