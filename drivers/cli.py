"""``tillbox hw ...``: the hardware commands for field staff.

Module-level imports stay light (argparse and the core's CLI helpers); each handler
imports the driver it needs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from appliance.cliutil import OneLineParser, data_dir, emit, open_till, till_command

if TYPE_CHECKING:
    from appliance.formats.chain import Event
    from appliance.services.printing import Till  # the core's, handed on to its services
    from drivers.devices import Devices
    from drivers.grbl_job import JobProgress
    from drivers.printer import ReceiptPrinter


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's commands to the ``tillbox`` parser. Keep imports inside handlers."""
    hw = sub.add_parser(
        "hw",
        help="hardware: printer, engraver, camera, GPIO",
        description="Check and use the till's devices (URLs in tillbox.toml "
        "[hardware]; sim:// runs the built-in simulators).",
    )
    hw_sub = hw.add_subparsers(
        dest="hw_command", metavar="COMMAND", required=True, parser_class=OneLineParser
    )

    p = till_command(hw_sub, "list", help="each configured device, its URL and its state")
    p.set_defaults(handler=cmd_list)

    p = till_command(hw_sub, "print-test", help="print a test receipt (code pages, QR, cut)")
    p.add_argument(
        "--preview",
        metavar="FILE.png",
        help="with a sim:// printer, also save what it printed as a PNG",
    )
    p.set_defaults(handler=cmd_print_test)

    p = till_command(
        hw_sub, "print-receipt", help="print (or reprint) one sale's or refund's receipt"
    )
    p.add_argument("--receipt", required=True, metavar="N", help="the receipt number")
    p.add_argument(
        "--preview",
        metavar="FILE.png",
        help="with a sim:// printer, also save what it printed as a PNG",
    )
    p.set_defaults(handler=cmd_print_receipt)

    p = till_command(hw_sub, "print-z", help="print (or reprint) a closed shift's Z report")
    p.add_argument(
        "--shift", required=True, metavar="N", type=_shift_number, help="the shift number"
    )
    p.set_defaults(handler=cmd_print_z)

    p = till_command(
        hw_sub, "reprint", help="print every receipt and Z report whose printing failed"
    )
    p.set_defaults(handler=cmd_reprint)

    p = till_command(hw_sub, "drawer", help="open the cash drawer (through the printer)")
    p.add_argument("--reason", default="no sale", help="why it was opened (logged)")
    p.set_defaults(handler=cmd_drawer)

    p = till_command(hw_sub, "engrave", help="engrave text with the laser, with progress")
    p.add_argument("--text", required=True, help="the text (\\n for a second line)")
    p.add_argument(
        "--material", default="wood", help="wood, leather or anodised-aluminium (default wood)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="trace the text's bounding box with the laser off"
    )
    p.add_argument(
        "--home",
        action="store_true",
        help="run the homing cycle ($H) first (machines with $22=1); clear the bed first",
    )
    p.add_argument(
        "--unlock",
        action="store_true",
        help="clear an alarm ($X) first; only after checking the machine",
    )
    p.add_argument(
        "--set-laser-mode",
        action="store_true",
        help="set $32=1 (laser mode) on the controller first",
    )
    p.set_defaults(handler=cmd_engrave)

    p = till_command(hw_sub, "photo", help="take a geotagged photo to a JPEG file")
    p.add_argument("--out", required=True, metavar="FILE.jpg")
    p.add_argument(
        "--purpose", default="inspection", help="what it documents (onboarding, inspection, permit)"
    )
    p.set_defaults(handler=cmd_photo)


def _shift_number(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a shift number, e.g. --shift 3")
    return int(text)


def _devices(args: argparse.Namespace) -> Devices:
    from drivers.devices import open_devices

    ddir = data_dir(args).require()
    return open_devices(ddir.load_config(), ddir)


def _save_preview(printer: ReceiptPrinter, path: str | None) -> str | None:
    if not path:
        return None
    if printer.simulator is None:
        from appliance.errors import TillError

        raise TillError(
            "--preview works with a sim:// printer only; a real printer prints on paper"
        )
    printer.simulator.render_png(path)
    return path


def cmd_list(args: argparse.Namespace) -> int:
    devices = _devices(args)
    try:
        states = devices.states()
    finally:
        devices.close()
    rows = [f"{s.kind:<9} {'ok  ' if s.ok else 'FAIL'} {s.url:<28} {s.message}" for s in states]
    emit(args, {"devices": [s.to_json() for s in states]}, "\n".join(rows))
    return 0


def cmd_print_test(args: argparse.Namespace) -> int:
    from appliance.errors import TillError
    from drivers.layout import TEST_PAGE_QR, ShopHeader, document_bytes, printer_test_lines

    devices = _devices(args)
    try:
        printer = devices.printer
        cols = printer.columns
        shop = ShopHeader.from_config(devices.config.section("shop"), devices.config.device_id)
        status = printer.status()
        if not status.can_print:
            raise TillError(status.problem() or "printer cannot print")
        rows = printer_test_lines(shop, cols, printer.profile_name)
        data = document_bytes(printer, rows, TEST_PAGE_QR)
        printer.send(data)
        after = printer.status()
        if after.problem():
            raise TillError(f"test receipt did not print completely: {after.problem()}")
        preview = _save_preview(printer, args.preview)
        text = "test receipt printed" + (
            "" if after.answered else " (printer gave no status; check the paper)"
        )
        if printer.simulator is not None and not args.json:
            text += "\n" + printer.simulator.rendered_text().rstrip()
        emit(
            args,
            {
                "ok": True,
                "printer": printer.url,
                "status": after.to_json(),
                "columns": cols,
                "preview": preview,
            },
            text,
        )
    finally:
        devices.close()
    return 0


def cmd_print_receipt(args: argparse.Namespace) -> int:
    from appliance.errors import TillError
    from appliance.services.printing import default_qr_for, print_sale_receipt, receipt_event

    devices = _devices(args)
    try:
        with open_till(args) as till:
            if not str(args.receipt).strip().isdigit() or len(str(args.receipt).strip()) > 15:
                raise TillError(f"--receipt {args.receipt!r} must be a receipt number")
            sale = receipt_event(till, int(args.receipt))
            outcome = print_sale_receipt(till, sale, devices.printer, default_qr_for(till, sale))
            queue = till.reprint_queue()
        printer = devices.printer
        if not outcome.ok:
            raise TillError(
                f"receipt {outcome.receipt_no} not printed: {outcome.message} "
                "(it is in the reprint queue: `tillbox hw reprint`)"
            )
        preview = _save_preview(printer, args.preview)
        text = outcome.message
        if printer.simulator is not None and not args.json:
            text += "\n" + printer.simulator.rendered_text().rstrip()
        emit(args, {**outcome.to_json(), "reprint_queue": queue, "preview": preview}, text)
    finally:
        devices.close()
    return 0


def cmd_reprint(args: argparse.Namespace) -> int:
    from appliance.errors import TillError
    from appliance.services.printing import default_qr_for, drain_reprint_queue, z_reprint_queue

    devices = _devices(args)
    try:
        with open_till(args) as till:
            outcomes = drain_reprint_queue(till, devices.printer, default_qr_for)
            left = till.reprint_queue()
            z_left = z_reprint_queue(till)
    finally:
        devices.close()
    printed = [o.receipt_no for o in outcomes if o.ok and o.shift_no is None]
    z_printed = [o.shift_no for o in outcomes if o.ok and o.shift_no is not None]
    failed = [o for o in outcomes if not o.ok]
    if failed:
        what = (
            f"receipt {failed[0].receipt_no}"
            if failed[0].shift_no is None
            else f"the Z report of shift {failed[0].shift_no}"
        )
        raise TillError(
            f"reprinted {len(printed) + len(z_printed)} document(s); {what} "
            f"failed: {failed[0].message}; {len(left) + len(z_left)} still queued"
        )
    text = f"reprinted {len(printed)} receipt(s)" if printed else "nothing to reprint"
    if z_printed:
        text = f"reprinted {len(printed)} receipt(s) and {len(z_printed)} Z report(s)"
    emit(
        args,
        {"printed": printed, "queued": left, "z_reports_printed": z_printed, "z_queued": z_left},
        text,
    )
    return 0


def cmd_print_z(args: argparse.Namespace) -> int:
    from appliance.errors import TillError
    from appliance.services.printing import print_z_report, shift_closed_event

    devices = _devices(args)
    try:
        with open_till(args) as till:
            event = shift_closed_event(till, args.shift)
            outcome = print_z_report(till, event, devices.printer)
    finally:
        devices.close()
    if not outcome.ok:
        raise TillError(f"Z report not printed: {outcome.message}")
    emit(args, outcome.to_json(), outcome.message)
    return 0


def print_z_at_close(args: argparse.Namespace, till: Till, event: Event) -> dict[str, Any]:
    """``tillbox shift close`` hook: hand the configured printer to the core's Z-report
    service (:func:`appliance.services.printing.print_z_at_close`); never raises."""
    from appliance.services.printing import print_z_at_close as print_z

    try:
        devices = _devices(args)
    except Exception as exc:  # noqa: BLE001 - a bad [hardware] section must not fail the close
        return {"printed": False, "message": f"Z report not printed: {exc}"}
    try:
        printer = devices.printer if devices.configured("printer") else None
        return print_z(till, event, printer)
    finally:
        devices.close()


def cmd_drawer(args: argparse.Namespace) -> int:
    from appliance.services.drawer import open_drawer

    devices = _devices(args)
    try:
        with open_till(args) as till:
            seq = open_drawer(till, devices.printer, reason=args.reason)
    finally:
        devices.close()
    emit(args, {"opened": True, "seq": seq}, "cash drawer opened")
    return 0


def cmd_engrave(args: argparse.Namespace) -> int:
    from appliance.errors import TillError
    from drivers.toolpath import frame_gcode, text_to_toolpath

    devices = _devices(args)
    text = args.text.replace("\\n", "\n")
    try:
        path = text_to_toolpath(text, devices.material(args.material), devices.work_area())
        engraver = devices.engraver
        if args.home:
            engraver.home()
        elif args.unlock:
            engraver.unlock()
        if args.set_laser_mode:
            engraver.set_laser_mode()
        lines = frame_gcode(path) if args.dry_run else path.gcode
        out = sys.stderr if args.json else sys.stdout
        shown = [-1]

        def progress(p: JobProgress) -> None:
            step = int(p.fraction * 10)
            if step != shown[0] or p.state == "done":
                shown[0] = step
                left = "" if p.remaining_s is None else f", about {p.remaining_s:.0f} s left"
                print(
                    f"{p.state}: {p.acked}/{p.total} lines ({p.fraction:.0%}){left}",
                    file=out,
                    flush=True,
                )

        job = engraver.start_job(
            lines, estimated_s=None if args.dry_run else path.estimated_s, on_progress=progress
        )
        try:
            result = job.wait()
        except KeyboardInterrupt:
            job.cancel()
            result = job.wait(30)
        assert result is not None
        if not args.dry_run:
            from appliance.services.cli_engraving import record_engraving_run

            with open_till(args) as till:
                record_engraving_run(till, path, result)
        if not result.ok:
            raise TillError(result.message)
        what = "frame traced (laser off)" if args.dry_run else result.message
        emit(
            args,
            {
                "ok": True,
                "dry_run": args.dry_run,
                "toolpath": path.to_json(),
                "job": result.to_json(),
            },
            f"{what}; letters {path.letter_mm:.1f} mm, box "
            f"{path.bbox[2] - path.bbox[0]:.1f} x {path.bbox[3] - path.bbox[1]:.1f} mm",
        )
    finally:
        devices.close()
    return 0


def cmd_photo(args: argparse.Namespace) -> int:
    from appliance.services.photos import capture_photo

    devices = _devices(args)
    try:
        with open_till(args) as till:
            photo, seq = capture_photo(till, devices.camera, args.out, purpose=args.purpose)
    finally:
        devices.close()
    info = {
        "file": str(photo.path),
        "sha256": photo.sha256,
        "bytes": photo.size,
        "width": photo.width,
        "height": photo.height,
        "seq": seq,
        "latitude": photo.latitude,
        "longitude": photo.longitude,
    }
    where = (
        f" at {photo.latitude:.5f}, {photo.longitude:.5f}"
        if photo.latitude is not None
        else " (not geotagged: set [location] latitude/longitude)"
    )
    emit(args, info, f"photo saved to {photo.path} ({photo.width}x{photo.height}){where}")
    return 0
