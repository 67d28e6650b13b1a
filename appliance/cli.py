"""``tillbox``: the command line for field staff, scripts and tests.

Start-up stays light: this module imports only the core. Other packages add
their command groups through the ``tillbox.commands`` entry point and import
their heavy dependencies (Kivy, paho, pyserial) inside their handlers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from appliance import __version__
from appliance.cliutil import (
    OneLineParser,
    add_data_dir,
    data_dir,
    emit,
    emit_durable,
    till_command,
    warn,
    whole_number,
)
from appliance.errors import TillError
from appliance.plugins import load_command_plugins, run_shift_closed_hooks

if TYPE_CHECKING:
    from appliance.till import SaleResult, Till


def _cart_item(text: str) -> tuple[str, int]:
    sku, _, qty = text.partition(":")
    if not sku:
        raise argparse.ArgumentTypeError(f"{text!r} must be SKU or SKU:QTY")
    if not qty:
        return sku, 1
    try:
        return sku, whole_number(qty)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"quantity in {text!r} is not a whole number up to 2**53-1"
        ) from None


def _open_till(args: argparse.Namespace) -> Till:
    from appliance.till import Till

    return Till.open(data_dir(args))


# -- handlers ------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from appliance.till import Till

    with Till.init(data_dir(args), args.device_id, demo=args.demo, tenant=args.tenant) as till:
        info = {
            "device_id": till.device_id,
            "public_key": till.public_key_hex(),
            "data_dir": str(till.data_dir.root),
            "demo": args.demo,
        }
        emit(
            args,
            info,
            f"initialised till {till.device_id} in {till.data_dir.root}\n"
            f"public key {info['public_key']}",
        )
    return 0


def cmd_device_show(args: argparse.Namespace) -> int:
    with _open_till(args) as till:
        info = {
            "device_id": till.device_id,
            "public_key": till.public_key_hex(),
            "tenant": till.config.section("device").get("tenant", ""),
            "data_dir": str(till.data_dir.root),
        }
        emit(args, info, f"device {info['device_id']}\npublic key {info['public_key']}")
    return 0


def cmd_catalog_list(args: argparse.Namespace) -> int:
    with _open_till(args) as till:
        catalog, profile, stock = till.catalog(), till.profile(), till.stock()
        items = []
        for item in catalog.items.values():
            code, rate_bp = profile.rate_for(item)
            items.append(
                {
                    **item.to_json(),
                    "tax_rate": code,
                    "tax_rate_bp": rate_bp,
                    "stock": stock.get(item.sku),
                }
            )
        lines = [
            f"{i['sku']:<12} {i['name']:<28} {till.money(i['price_minor']):>12} "
            f"{i['tax_rate']:<9} stock {'-' if i['stock'] is None else i['stock']}"
            for i in items
        ]
        emit(
            args,
            {"items": items, "tax_profile": profile.id, "currency": profile.currency},
            "\n".join(lines),
        )
    return 0


def cmd_catalog_apply(args: argparse.Namespace) -> int:
    from appliance.catalog import read_catalog_file

    data = read_catalog_file(args.file)
    with _open_till(args) as till:
        event = till.apply_catalog(data)
        emit(
            args,
            {"seq": event.seq, "items": len(data.get("items", []))},
            f"catalog applied at seq {event.seq}",
        )
    return 0


def cmd_sale(args: argparse.Namespace) -> int:
    from appliance.pricing import CartLine

    with _open_till(args) as till:
        result = till.sell(
            [CartLine(sku, qty) for sku, qty in args.item],
            args.pay,
            tendered=args.tendered,
            promo_code=args.promo,
            idempotency_key=args.idempotency_key,
        )
        # The sale is durable from here on: nothing below may report it as failed (a
        # cashier who sees an error sells again). A failure only costs detail: the
        # sale is reported done, with a warning on stderr, and the exit status is 0.
        try:
            out, text = _sale_report(till, result)
        except Exception as exc:  # noqa: BLE001 - any failure after the commit
            out = {"sale_id": result.payload["sale_id"], "seq": result.event.seq}
            out["receipt_no"], out["replayed"] = result.payload["receipt_no"], result.replayed
            text = f"sale recorded: receipt {out['receipt_no']} (seq {out['seq']})"
            warn(
                f"receipt details not shown ({type(exc).__name__}: {exc}); the sale is "
                f"recorded: do not sell again; `tillbox receipt show {out['receipt_no']}`"
            )
        emit_durable(args, out, text)
    return 0


def _sale_report(till: Till, result: SaleResult) -> tuple[dict, str]:
    out = result.to_json()
    text = (
        f"sale recorded: receipt {out['receipt_no']} (seq {out['seq']}), total "
        f"{till.money(out['total_minor'])}, paid by {out['method']}"
    )
    if out["method"] == "cash":
        text += f", change {till.money(out['change_minor'])}"
    # The signed receipt block (the QR payload). A missing key must not turn the
    # sale into a failure: say so and print without the code.
    from appliance.formats import receipt as receipt_sig

    try:
        out["receipt_qr"] = receipt_sig.receipt_qr_payload(till, result.event)
        text += f"\nreceipt code {receipt_sig.short_code(out['receipt_qr'])}"
    except TillError as exc:
        out["receipt_qr"] = None
        text += "\nreceipt not signed"
        warn(f"receipt not signed: {exc}")
    if result.replayed:
        text = "already recorded (same idempotency key): " + text
    return out, text


def cmd_refund(args: argparse.Namespace) -> int:
    if (args.sale is None) == (args.receipt_qr is None):
        raise TillError("name the sale: --sale SALE_ID (or receipt number) or --receipt-qr PAYLOAD")
    with _open_till(args) as till:
        if args.receipt_qr is not None:
            from appliance import refund_scan

            result = refund_scan.refund_by_receipt(till, args.receipt_qr, args.item or None)
        else:
            result = till.refund(args.sale, args.item or None)
        out = result.to_json()
        text = (
            f"refund recorded: receipt {out['receipt_no']} (seq {out['seq']}), "
            f"{till.money(out['total_minor'])} back by {out['method']}"
        )
        if "sale_device" in out:  # the kiosk says which till sold it, and so does this
            text += f" of till {out['sale_device']}'s receipt {out['sale_receipt_no']}"
        emit(args, out, text)
    return 0


# -- the region's lists, events, bookings (issue 15) ----------------------------------------
def _read_region_file(path: str) -> bytes:
    from appliance.boundedio import read_bounded
    from appliance.formats.region import MAX_BYTES

    return read_bounded(path, max(MAX_BYTES.values()), "region update")


def _applied_text(info: dict) -> str:
    if info["status"] == "unchanged":
        return (
            f"{info['kind']} version {info['version']} not applied: version "
            f"{info['previous_version']} is already in force (only newer versions apply)"
        )
    return f"{info['kind']} version {info['version']} applied at seq {info['seq']}"


def cmd_region_apply(args: argparse.Namespace) -> int:
    from appliance import region

    kind = "schedule" if args.command == "event" else None
    data = _read_region_file(args.file)
    with _open_till(args) as till:
        info = region.apply_signed(till, data, kind).to_json()
    emit(args, info, _applied_text(info))
    return 0


def cmd_region_status(args: argparse.Namespace) -> int:
    from appliance import projections
    from appliance.formats.region import KINDS

    with _open_till(args) as till:
        lists = {}
        for kind in KINDS:
            row = projections.region_row(till.log.conn, kind)
            lists[kind] = (
                {"version": row[0], "seq": row[1], "issued_wall_ms": row[2]} if row else None
            )
        stall = till.lists.stall(till.log.conn, till.device_id)
        tenant = till.tenant
    info = {"tenant": tenant, "stall": stall, "lists": lists}
    text = [f"tenant {info['tenant']}, stall {stall or '(none in the roster)'}"]
    for kind, row in lists.items():
        text.append(f"{kind:<9} " + (f"version {row['version']}" if row else "none applied"))
    emit(args, info, "\n".join(text))
    return 0


def _event_line(e: dict) -> str:
    import datetime as dt

    def when(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")

    return (
        f"{e['id']:<16} {when(e['start_ms'])} - {when(e['end_ms'])} UTC  {e['name']} "
        f"(tax {e['tax_profile']}, {e['jurisdiction']})"
    )


def cmd_event_current(args: argparse.Namespace) -> int:
    with _open_till(args) as till:
        pick = till.current_event()
        info = {**pick.to_json(), "in_progress": till.event_in_progress()}
    if pick.how == "no_schedule":
        text = "no event schedule applied: sales carry no event (the shop's tax profile)"
    elif pick.how == "ask":
        assert pick.question is not None
        text = "\n".join(
            [
                f"ask the cashier ({pick.question.reason.replace('_', ' ')}): choose with "
                "`tillbox event choose ID` or `--none`",
                *(_event_line(e.to_json()) for e in pick.candidates),
            ]
        )
    elif pick.event is None:
        text = "no event (the cashier chose none)"
    else:
        text = f"current event ({pick.how}): " + _event_line(pick.event.to_json())
    emit(args, info, text)
    return 0


def cmd_event_choose(args: argparse.Namespace) -> int:
    if (args.event_id is None) == (not args.none):
        raise TillError("name the event: `tillbox event choose ID`, or `--none` for no event")
    with _open_till(args) as till:
        event = till.choose_event("" if args.none else args.event_id)
    chosen = event.payload["event_id"]
    emit(
        args,
        {"seq": event.seq, **event.payload},
        f"event {chosen} chosen (seq {event.seq})"
        if chosen
        else f"no event chosen (seq {event.seq})",
    )
    return 0


def cmd_event_list(args: argparse.Namespace) -> int:
    with _open_till(args) as till:
        schedule = till.lists.schedule(till.log.conn)
        stall = till.lists.stall(till.log.conn, till.device_id)
    events = [e.to_json() for e in schedule.for_stall(stall)] if schedule else []
    emit(
        args,
        {"stall": stall, "events": events},
        "\n".join(_event_line(e) for e in events) or "no events in this stall's schedule",
    )
    return 0


def cmd_booking(args: argparse.Namespace) -> int:
    from appliance import bookings

    with _open_till(args) as till:
        if args.action == "list":
            views = [v.to_json() for v in bookings.listing(till)]
            lines = [
                f"{b['number']:>6}  {b['name']:<24} {b['payment']:<14} "
                + ", ".join(f"{i['qty']} x {i['sku']}" for i in b["items"])
                + ("  REDEEMED" if b["redeemed"] else "")
                for b in views
            ]
            emit(args, {"bookings": views}, "\n".join(lines) or "no bookings for this stall")
            return 0
        if sum(x is not None for x in (args.qr, args.number, args.name)) != 1:
            raise TillError("find the booking with one of --qr PAYLOAD, --number N, --name TEXT")
        booking, via = bookings.find(till, qr=args.qr, number=args.number, name=args.name)
        done = bookings.redeem(till, booking, via, method=args.pay, tendered=args.tendered)
        event, sale = done["redemption"], done["sale"]
        p = event.payload
        out = {"seq": event.seq, **p, "sale": sale.to_json() if sale else None}
        text = f"booking {booking.number} ({booking.name}) handed over (seq {event.seq})"
        if sale is None:
            text += ": paid online, nothing due"
        else:
            text += f": sale receipt {p['receipt_no']}, {till.money(p['due_minor'])} by {args.pay}"
        engrave = [ln["personalisation"]["text"] for ln in p["lines"] if ln.get("personalisation")]
        if engrave:
            text += "\nto engrave: " + ", ".join(repr(t) for t in engrave)
        emit_durable(args, out, text)
    return 0


def _format_z(till: Till, z: dict) -> str:
    lines = [
        f"Z report, shift {z['shift_no']}",
        f"  sales {z['sales_count']}   refunds {z['refunds_count']}",
    ]
    for t in z["taxes"]:
        lines.append(
            f"  tax {t['rate']:<10} gross {till.money(t['gross_minor']):>12}  "
            f"tax {till.money(t['tax_minor']):>10}  net {till.money(t['net_minor']):>12}"
        )
    for p in z["payments"]:
        lines.append(f"  paid {p['method']:<9} x{p['count']:<4} {till.money(p['total_minor']):>12}")
    for r in z["refunds"]:
        lines.append(
            f"  refund {r['method']:<7} x{r['count']:<4} {till.money(r['total_minor']):>12}"
        )
    lines.append(f"  takings {till.money(z['takings_minor'])}")
    if "expected_cash_minor" in z:  # Z reports recorded before the opening float lack it
        lines.append(
            f"  cash in drawer: float {till.money(z['opening_float_minor'])} + cash takings "
            f"= {till.money(z['expected_cash_minor'])}"
        )
    return "\n".join(lines)


def cmd_shift(args: argparse.Namespace) -> int:
    if args.float and args.action != "open":
        raise TillError("--float is the opening float; give it with `tillbox shift open`")
    with _open_till(args) as till:
        if args.action == "open":
            event = till.open_shift(args.float)
            emit(
                args,
                {**event.payload, "seq": event.seq},
                f"shift {event.payload['shift_no']} opened (seq {event.seq}), float "
                f"{till.money(args.float)}",
            )
        elif args.action == "close":
            event = till.close_shift()
            z = event.payload["z_report"]
            printing = [] if args.no_print else run_shift_closed_hooks(args, till, event)
            emit(
                args,
                {"shift_no": z["shift_no"], "seq": event.seq, "z_report": z, "printing": printing},
                "\n".join([_format_z(till, z), *(p["message"] for p in printing if p["message"])]),
            )
        else:
            shift = till.current_shift()
            emit(
                args,
                {"open": shift is not None, "shift_no": shift},
                f"shift {shift} is open" if shift else "no shift is open",
            )
    return 0


def cmd_log_verify(args: argparse.Namespace) -> int:
    from appliance.log import EventLog

    log = EventLog.open(data_dir(args).require().log_path, readonly=True)
    try:
        report = log.verify(args.since)
    finally:
        log.close()
    out = {
        "ok": report.ok,
        "checked": report.checked,
        "last_seq": report.last_seq,
        "first_bad_seq": report.first_bad_seq,
        "reason": report.reason,
    }
    if report.ok:
        emit(args, out, f"log intact: {report.checked} events checked, last seq {report.last_seq}")
        return 0
    if args.json:
        emit(args, out, "")
    else:
        sys.stderr.write(
            f"tillbox: error: log broken at seq {report.first_bad_seq}: "
            f"{report.reason}; keep this card for the inspector and restore "
            "the till from the region\n"
        )
    return 4


def cmd_log_export(args: argparse.Namespace) -> int:
    from appliance.log import EventLog

    log = EventLog.open(data_dir(args).require().log_path, readonly=True)
    try:
        out = sys.stdout
        for event in log.events(args.since):
            out.write(event.export_line().decode("utf-8"))
            out.write("\n")
    finally:
        log.close()
    return 0


def cmd_log_rebuild(args: argparse.Namespace) -> int:
    from appliance import projections

    with _open_till(args) as till:
        live = projections.snapshot(till.log.conn)
        rebuilt = projections.rebuild(till.log.conn)
        differing = sorted(t for t in live if live[t] != rebuilt[t])
        out = {"ok": not differing, "differing_tables": differing}
        if differing:
            raise TillError(
                f"projections differ from a rebuild of the log in: "
                f"{', '.join(differing)}; report this and run from a backup"
            )
        emit(args, out, "projections match a full rebuild from the log")
    return 0


# -- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tillbox", description="Offline-first point-of-sale till.")
    parser.add_argument("--version", action="version", version=f"tillbox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True

    p = till_command(sub, "init", help="create a till: log, device key, config")
    p.add_argument("--device-id", required=True, help="this till's id (names its MQTT topics)")
    p.add_argument("--tenant", default="demo", help="the merchant/region tenant (default demo)")
    p.add_argument("--demo", action="store_true", help="load a small demo catalog")
    p.set_defaults(handler=cmd_init)

    device = sub.add_parser("device", help="this device's identity").add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = till_command(device, "show", help="device id and public key")
    p.set_defaults(handler=cmd_device_show)

    catalog = sub.add_parser("catalog", help="items, prices, tax rates").add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = till_command(catalog, "list", help="items with price, tax rate and stock")
    p.set_defaults(handler=cmd_catalog_list)
    p = till_command(catalog, "apply", help="apply a catalog JSON file (recorded in the log)")
    p.add_argument("file", help="catalog JSON (items, tax_profiles, promotions)")
    p.set_defaults(handler=cmd_catalog_apply)

    p = till_command(sub, "sale", help="record a sale (durable before it returns)")
    p.add_argument(
        "--item",
        action="append",
        required=True,
        type=_cart_item,
        metavar="SKU[:QTY]",
        help="an item to sell; repeat for more",
    )
    p.add_argument("--pay", required=True, choices=["cash", "card"], help="payment method")
    p.add_argument(
        "--tendered", type=whole_number, metavar="MINOR", help="cash handed over, minor units"
    )
    p.add_argument("--promo", metavar="CODE", help="a promo code")
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="retrying with the same key never records the sale twice",
    )
    p.set_defaults(handler=cmd_sale)

    p = till_command(sub, "refund", help="refund a sale, whole or some items")
    p.add_argument("--sale", metavar="SALE_ID", help="the sale id or its receipt number")
    p.add_argument(
        "--receipt-qr",
        metavar="PAYLOAD",
        help="the scanned receipt QR of this till or of any till in the roster",
    )
    p.add_argument(
        "--item",
        action="append",
        type=_cart_item,
        metavar="SKU:QTY",
        help="refund only these; repeat for more (default: everything left)",
    )
    p.set_defaults(handler=cmd_refund)

    p = till_command(sub, "shift", help="open or close a shift (close prints the Z report)")
    p.add_argument("action", choices=["open", "close", "status"])
    p.add_argument(
        "--no-print",
        action="store_true",
        help="close without printing the Z report (print it later: `tillbox hw print-z --shift N`)",
    )
    p.add_argument(
        "--float",
        type=int,
        default=0,
        metavar="MINOR",
        help="with open: the cash counted into the drawer, minor units (default 0)",
    )
    p.set_defaults(handler=cmd_shift)

    event = sub.add_parser("event", help="the scheduled event the till trades at").add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = till_command(event, "current", help="the current event, or what the cashier must choose")
    p.set_defaults(handler=cmd_event_current)
    p = till_command(event, "list", help="this stall's events in the applied schedule")
    p.set_defaults(handler=cmd_event_list)
    p = till_command(event, "apply", help="apply a region-signed event schedule file")
    p.add_argument("file", help="the signed schedule (TBRU) the region made")
    p.set_defaults(handler=cmd_region_apply)
    p = till_command(event, "choose", help="answer the till's question: which event this is")
    p.add_argument("event_id", nargs="?", metavar="ID", help="an event of the schedule")
    p.add_argument("--none", action="store_true", help="no event: the shop's own tax profile")
    p.set_defaults(handler=cmd_event_choose)

    regional = sub.add_parser(
        "region", help="the region's signed lists: schedule, roster, bookings"
    ).add_subparsers(dest="action", metavar="ACTION", parser_class=OneLineParser, required=True)
    p = till_command(regional, "apply", help="apply a region-signed schedule, roster or bookings")
    p.add_argument("file", help="the signed region update (TBRU)")
    p.set_defaults(handler=cmd_region_apply)
    p = till_command(regional, "status", help="the version of each region list in force")
    p.set_defaults(handler=cmd_region_status)

    p = till_command(sub, "booking", help="bookings: list them, hand one over")
    p.add_argument("action", choices=["list", "redeem"])
    p.add_argument("--qr", metavar="PAYLOAD", help="redeem: the customer's booking code")
    p.add_argument("--number", type=whole_number, metavar="N", help="redeem: the booking number")
    p.add_argument("--name", metavar="TEXT", help="redeem: part of the name it was booked under")
    p.add_argument(
        "--pay", choices=["cash", "card"], help="redeem, paid at pickup: the payment method"
    )
    p.add_argument(
        "--tendered", type=whole_number, metavar="MINOR", help="cash handed over, minor units"
    )
    p.set_defaults(handler=cmd_booking)

    log = sub.add_parser("log", help="check and export the event log").add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )
    p = till_command(log, "verify", help="check the hash chain and the append-only guards")
    p.add_argument(
        "--since",
        type=whole_number,
        default=0,
        metavar="SEQ",
        help="check only after this (already verified) sequence number",
    )
    p.set_defaults(handler=cmd_log_verify)
    p = log.add_parser("export", help="events as JSON lines")
    add_data_dir(p)
    p.add_argument("--since", type=whole_number, default=0, metavar="SEQ", help="events after SEQ")
    p.set_defaults(handler=cmd_log_export)
    p = till_command(
        log, "rebuild-check", help="rebuild stock, shifts and receipts from the log and compare"
    )
    p.set_defaults(handler=cmd_log_rebuild)

    load_command_plugins(sub)
    return parser


def one_line(text: str) -> str:
    """``text`` with every character that is not printable escaped (a path from a USB
    stick may hold a newline, or U+0085, which splits a line too): an error stays one
    line on the terminal and in the journal, whatever the input was."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except TillError as exc:
        sys.stderr.write(f"tillbox: error: {one_line(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("tillbox: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: still one line, still actionable
        if os.environ.get("TILLBOX_DEBUG"):
            raise
        sys.stderr.write(
            f"tillbox: internal error: {type(exc).__name__}: {one_line(str(exc))}; rerun with "
            "TILLBOX_DEBUG=1 and report the output\n"
        )
        return 70


if __name__ == "__main__":
    raise SystemExit(main())
