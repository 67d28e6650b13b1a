"""The compliance commands: selftest, enroll, enrollment, inspect, receipt, privacy.

Module-level imports stay light (argparse + appliance.cliutil); each handler
imports what it needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from appliance.cliutil import OneLineParser, add_json, data_dir, emit, till_command

if TYPE_CHECKING:
    from compliance.enroll import EnrollmentInput

T = TypeVar("T")


# -- selftest ------------------------------------------------------------------------------
def cmd_selftest(args: argparse.Namespace) -> int:
    if args.action == "override":
        return cmd_selftest_override(args)
    from compliance.probes import DriversProbes
    from compliance.selftest import CHECK_NAMES, run_selftest

    ddir = data_dir(args).require()
    only = None
    if args.only:
        only = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in only if n not in CHECK_NAMES]
        if unknown:
            from appliance.errors import TillError

            raise TillError(f"unknown check {unknown[0]!r}; use some of {', '.join(CHECK_NAMES)}")
    probes = DriversProbes(ddir.load_config(), ddir)
    try:
        report = run_selftest(
            ddir,
            probes,
            only=only,
            full_log=args.full,
            record=not args.no_record,
            trigger=args.trigger,
        )
    finally:
        probes.close()
    emit(args, report.to_json(), report.table())
    if report.ok:
        return 0
    # The report is the answer (stdout, or --json); the one line on stderr is what every
    # failing tillbox command prints: what failed and what to do.
    failed = [c.name for c in report.checks if c.result == "fail" and c.fatal]
    print(
        f"self-test failed: {', '.join(failed) or 'a fatal check'}; "
        "fix what the report says and run it again",
        file=sys.stderr,
    )
    return 1


def cmd_selftest_override(args: argparse.Namespace) -> int:
    """A technician lets the till trade despite failed fatal checks (PIN on stdin)."""
    import getpass

    from appliance.till import Till

    if sys.stdin.isatty():
        pin = getpass.getpass("technician PIN: ")
    else:
        pin = sys.stdin.readline(64).strip()
    with Till.open(data_dir(args).require()) as till:
        event = till.override_selftest(pin)
    failed = event.payload["failed"]
    emit(
        args,
        {"seq": event.seq, "failed": failed},
        f"self-test override recorded at seq {event.seq}: selling allowed despite "
        f"{', '.join(failed)} until the next self-test",
    )
    return 0


# -- enroll --------------------------------------------------------------------------------
def _ask(prompt: str, current: str) -> str:
    if current or not sys.stdin.isatty():
        return current
    return input(f"{prompt}: ").strip()


def _ask_many(prompt: str, parse: Callable[[str], T], current: list[T]) -> list[T]:
    """Ask for entries until an empty line; a bad entry is explained and asked again."""
    from appliance.errors import TillError

    if current or not sys.stdin.isatty():
        return current
    out = []
    while True:
        text = input(f"{prompt} (empty line when done): ").strip()
        if not text:
            return out
        try:
            out.append(parse(text))
        except TillError as exc:
            print(f"  {exc}")


def _guided_input(args: argparse.Namespace) -> EnrollmentInput:
    """Flags first; in a terminal, ask for whatever is missing (the CLI onboarding flow)."""
    from compliance import enroll

    attestation = args.attestation or ""
    if args.attestation_file:
        from appliance.boundedio import TEXT_FILE_LIMIT, read_text_bounded

        attestation = read_text_bounded(args.attestation_file, TEXT_FILE_LIMIT, "attestation")
    data = enroll.EnrollmentInput(
        operator=_ask("Operator name", args.operator or ""),
        business=_ask("Business name", args.business or ""),
        registration=_ask("Business registration / trader id", args.registration or "")
        if not args.business
        else args.registration or "",
        address=args.address or "",
        contact=args.contact or "",
        permits=_ask_many(
            "Permit KIND:NUMBER:YYYY-MM-DD:FILE (FILE may be camera)",
            enroll.parse_permit,
            [enroll.parse_permit(p) for p in args.permit or []],
        ),
        photos=_ask_many(
            "Equipment photo LABEL:FILE (FILE may be camera)",
            enroll.parse_photo,
            [enroll.parse_photo(p) for p in args.photo or []],
        ),
        attestation=_ask("Self-attestation statement", attestation),
        confirmed=args.confirm,
        assets=_ask_many(
            "Equipment to tag [TAG:]DESCRIPTION",
            enroll.parse_asset,
            [enroll.parse_asset(a) for a in args.asset or []],
        ),
    )
    if data.attestation and not data.confirmed and sys.stdin.isatty():
        print(f"Statement: {data.attestation}")
        answer = input(f"{data.operator or 'Operator'}, do you confirm it? [yes/no]: ")
        data.confirmed = answer.strip().lower() in ("y", "yes")
    return data


def cmd_enroll(args: argparse.Namespace) -> int:
    from appliance.till import Till
    from compliance import enroll
    from compliance.probes import DriversProbes

    data = _guided_input(args)
    ddir = data_dir(args).require()
    probes = DriversProbes(ddir.load_config(), ddir)
    try:
        with Till.open(ddir) as till:
            out = enroll.enroll(till, data, probes, print_labels=not args.no_labels)
            if args.out:
                out["export"] = enroll.export_for_region(till, args.out)
    finally:
        probes.close()
    text = (
        f"enrolled: enrollment {out['sequence']} signed and logged at seq {out['seq']}\n"
        f"device {out['device_id']} public key {out['public_key']}\n"
        f"{out['permits']} permit(s), {out['photos']} photo(s), asset tags "
        f"{', '.join(out['assets']) or 'none'}"
    )
    if out["label_problems"]:
        text += f"\nlabels not printed: {'; '.join(out['label_problems'])}"
    if args.out:
        text += f"\nenrollment export for the region written to {args.out}"
    emit(args, out, text)
    return 0


def cmd_enrollment(args: argparse.Namespace) -> int:
    from appliance.till import Till
    from compliance import enroll

    with Till.open(data_dir(args)) as till:
        if args.action == "export":
            out = enroll.export_for_region(till, args.out)
            emit(
                args,
                out,
                f"enrollment {out['sequence']} exported to {out['path']} (signed manifest and "
                f"{out['files']} file(s), {out['bytes']} bytes): import it at the region with "
                "`tillbox edge enrollment import --db URL FILE`",
            )
        else:
            signed = enroll.latest_signed(till)
            m = signed["manifest"]
            permits = ", ".join(
                f"{p['kind']} {p['number']} until {p['expires']}" for p in m["permits"]
            )
            emit(
                args,
                signed,
                f"enrollment {m['sequence']}: {m['business']['name']} "
                f"(operator {m['operator']['name']})\npermits: {permits}\n"
                f"public key {m['public_key']}",
            )
    return 0


# -- inspect -------------------------------------------------------------------------------
class _Bar:
    """A text progress bar on stderr; redraws at most 100 times."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        pct = 100 if total <= 0 else done * 100 // total
        if pct == self.last:
            return
        self.last = pct
        filled = pct * 30 // 100
        sys.stderr.write(
            f"\rchecking [{'#' * filled}{'.' * (30 - filled)}] {pct:3d}% "
            f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
        )
        if pct == 100:
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_inspect_export(args: argparse.Namespace) -> int:
    from compliance.bundle import export_bundle

    result = export_bundle(
        data_dir(args),
        args.out,
        date_from=args.date_from,
        date_to=args.date_to,
        include_personal=args.include_personal_data,
        nonce=args.nonce,
    )
    emit(
        args,
        result.to_json(),
        f"inspection bundle written to {result.path}: {result.files} files, "
        f"{result.events} events (seq {result.first_seq}-{result.last_seq}), "
        f"{result.receipts} receipts, {result.bytes} bytes\nsha256 {result.sha256}",
    )
    return 0


def cmd_inspect_verify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from appliance.keys import load_verify_key
    from compliance.verify import verify_bundle

    expected = None
    if args.public_key is not None:
        expected = load_verify_key(args.public_key).encode().hex()
    region = None
    if args.region_key is not None:
        region = load_verify_key(args.region_key).encode().hex()
    show = args.progress or (sys.stderr.isatty() and not args.json)
    verdict = verify_bundle(
        args.file,
        public_key=expected,
        region_key=region,
        nonce=args.nonce,
        progress=_Bar() if show else None,
    )
    if not verdict.ok:
        emit(args, verdict.to_json(), f"VERDICT: NOT INTACT. first problem: {verdict.problem}")
        return 4
    when = datetime.fromtimestamp(verdict.exported_at_ms / 1000, UTC)
    proved = verdict.proved()
    if verdict.built_by == "region":
        head = (
            f"VERDICT: INTACT. region-built package for device {verdict.device_id} (tenant "
            f"{verdict.tenant}), {verdict.files} files, {verdict.events} events (seq "
            f"{verdict.first_seq}-{verdict.last_seq}) chained; built {when:%Y-%m-%d %H:%M:%S} "
            "UTC by the region's clock"
        )
    else:
        head = (
            f"VERDICT: INTACT. device {verdict.device_id} (tenant {verdict.tenant}), "
            f"{verdict.files} files, {verdict.events} events (seq {verdict.first_seq}-"
            f"{verdict.last_seq}) chained, {verdict.receipts} receipt signatures valid; "
            f"exported {when:%Y-%m-%d %H:%M:%S} UTC by the till's clock"
        )
    lines = [
        head,
        f"built by: {proved['built_by']}",
        f"device signature: {proved['device_signature']}",
        f"chain: {proved['chain']}",
        f"region acks: {proved['region_acks']}",
        f"enrollment review: {proved['enrollment_review']}",
        f"nonce: {proved['nonce']}",
    ]
    if verdict.unproved:
        lines.append("NOT PROVED what you asked: " + "; ".join(verdict.unproved))
    emit(args, verdict.to_json(), "\n".join(lines))
    return 5 if verdict.unproved else 0


# -- receipt -------------------------------------------------------------------------------
def cmd_receipt_verify(args: argparse.Namespace) -> int:
    from appliance.formats.receipt import TB2Fields, verify_receipt_payload
    from appliance.keys import load_verify_key

    check = verify_receipt_payload(args.payload, load_verify_key(args.public_key))
    if check.ok and check.fields is not None:
        from datetime import UTC, datetime

        f = check.fields
        when = datetime.fromtimestamp(f.unix_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        totals = ", ".join(
            f"{bp // 100}.{bp % 100:02d}%: {'-' if g < 0 else ''}{abs(g) // 100}.{abs(g) % 100:02d}"
            for bp, g in f.totals
        )
        text = (
            f"VALID {f.version} receipt {f.receipt_no} ({'sale' if f.kind == 'S' else 'refund'}) "
            f"from device {f.device_id} at {when}, {f.currency} {totals}; code {check.code}"
        )
        if isinstance(f, TB2Fields):
            text += f"\ntenant {f.tenant}, paid by {f.method}, key id {f.key_id}, event "
            text += f"hash {f.event_ref[:16]}..."
            if f.refunded_receipt_no is not None:
                text += f", refunds receipt {f.refunded_receipt_no}"
    else:
        text = f"INVALID: {check.problem}"
    emit(args, check.to_json(), text)
    return 0 if check.ok else 1


def cmd_receipt_show(args: argparse.Namespace) -> int:
    from appliance import queries
    from appliance.formats import receipt as receipt_sig
    from appliance.till import Till

    with Till.open(data_dir(args)) as till:
        event = till.find_sale(args.receipt) if not args.refund else None
        if event is None:
            number = str(args.receipt).strip()
            seq = queries.refund_seq(
                till.log, int(number) if number.isdigit() and len(number) <= 15 else None
            )
            if seq is None:
                from appliance.errors import NotFound

                raise NotFound(f"no refund receipt {args.receipt}; check the number")
            event = till.log.event(seq)
        payload = receipt_sig.receipt_qr_payload(till, event)
        out = {
            "receipt_no": event.payload["receipt_no"],
            "seq": event.seq,
            "receipt_qr": payload,
            "code": receipt_sig.short_code(payload),
        }
        emit(args, out, f"{payload}\ncode {out['code']}")
    return 0


# -- privacy -------------------------------------------------------------------------------
def cmd_privacy(args: argparse.Namespace) -> int:
    from appliance import privacy
    from appliance.errors import TillError
    from appliance.till import Till

    with Till.open(data_dir(args)) as till:
        if args.action == "consent":
            customer, event = privacy.record_consent(
                till, args.purpose, sync_allowed=args.sync, wording=args.wording or ""
            )
            emit(
                args,
                {"customer": customer, "seq": event.seq},
                f"consent recorded for customer {customer} (seq {event.seq})",
            )
        elif args.action == "store":
            data = {}
            for item in args.field or []:
                name, sep, value = item.partition("=")
                if not sep or not name:
                    raise TillError(f"--field {item!r} must be NAME=VALUE")
                data[name] = value
            event = privacy.store_personal(till, args.customer, args.store_purpose, data)
            emit(
                args,
                {"customer": args.customer, "seq": event.seq},
                f"stored encrypted for {args.customer} (seq {event.seq})",
            )
        elif args.action == "show":
            records = privacy.read_personal(till.data_dir, till.log, args.customer)
            emit(
                args,
                {"customer": args.customer, "records": records},
                "\n".join(f"seq {r['seq']} {r['purpose']}: {r['data']}" for r in records)
                or "no records",
            )
        else:
            event = privacy.erase(till, args.customer, args.reason)
            emit(
                args,
                {"customer": args.customer, "seq": event.seq},
                f"erased: the key of {args.customer} is deleted; its data is unreadable "
                f"(seq {event.seq})",
            )
    return 0


# -- registration --------------------------------------------------------------------------
def _sub(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return parser.add_subparsers(
        dest="action", metavar="ACTION", parser_class=OneLineParser, required=True
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's commands to the ``tillbox`` parser. Keep imports inside handlers."""
    p = till_command(
        sub,
        "selftest",
        help="preflight self-test of devices, log, clock, key, "
        "permits; records the result in the log; `override`: a technician's PIN lets "
        "a blocked till sell",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["run", "override"],
        default="run",
        help="run the self-test (default) or record a technician override (PIN on stdin)",
    )
    p.add_argument("--only", metavar="CHECKS", help="comma-separated checks to run")
    p.add_argument(
        "--full",
        action="store_true",
        help="verify the whole log chain, not only the tail since the last self-test",
    )
    p.add_argument("--no-record", action="store_true", help="do not record the result")
    p.add_argument(
        "--trigger",
        default="cli",
        choices=["cli", "boot", "kiosk"],
        help="who ran it (recorded with the result)",
    )
    p.set_defaults(handler=cmd_selftest)

    p = till_command(
        sub,
        "enroll",
        help="onboard the till: operator, permits, photos, "
        "attestation, asset tags; signed and logged",
    )
    p.add_argument("--operator", help="operator's name")
    p.add_argument("--business", help="business name")
    p.add_argument("--registration", help="business registration / trader id")
    p.add_argument("--address", help="business address")
    p.add_argument("--contact", help="operator contact (phone or email)")
    p.add_argument(
        "--permit",
        action="append",
        metavar="KIND:NUMBER:YYYY-MM-DD:FILE",
        help="a permit scan and its expiry; FILE may be 'camera'; repeat for more",
    )
    p.add_argument(
        "--photo",
        action="append",
        metavar="LABEL:FILE",
        help="an equipment photo; FILE may be 'camera'; repeat for more",
    )
    p.add_argument("--attestation", metavar="TEXT", help="the self-attestation statement")
    p.add_argument("--attestation-file", metavar="FILE", help="read the statement from FILE")
    p.add_argument("--confirm", action="store_true", help="the operator confirms the attestation")
    p.add_argument(
        "--asset",
        action="append",
        metavar="[TAG:]DESCRIPTION",
        help="a piece of equipment to tag (QR label); repeat for more",
    )
    p.add_argument("--no-labels", action="store_true", help="do not print asset QR labels")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="also write the enrollment export for the region (signed manifest, scans, photos)",
    )
    p.set_defaults(handler=cmd_enroll)

    enrollment = _sub(
        sub.add_parser("enrollment", help="show or export the signed enrollment for the region")
    )
    p = till_command(enrollment, "show", help="the latest signed enrollment manifest")
    p.set_defaults(handler=cmd_enrollment)
    p = till_command(
        enrollment,
        "export",
        help="write the enrollment export the region imports: the signed manifest, every "
        "permit scan and photo it lists",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the export .zip to write")
    p.set_defaults(handler=cmd_enrollment)

    inspect = _sub(sub.add_parser("inspect", help="inspection bundles: export and verify"))
    p = till_command(inspect, "export", help="write a signed, self-verifying inspection bundle")
    p.add_argument("--out", required=True, metavar="FILE", help="the bundle .zip to write")
    p.add_argument(
        "--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (UTC) of the period"
    )
    p.add_argument(
        "--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (UTC) of the period"
    )
    p.add_argument(
        "--include-personal-data",
        action="store_true",
        help="add customers' readable personal data (off by default)",
    )
    p.add_argument(
        "--nonce",
        metavar="TEXT",
        help="the inspector's challenge, signed into the manifest with the export time",
    )
    p.set_defaults(handler=cmd_inspect_export)
    p = inspect.add_parser("verify", help="re-check a bundle offline; the first problem found")
    add_json(p)
    p.add_argument("file", help="the bundle .zip")
    p.add_argument(
        "--public-key",
        metavar="HEX",
        help="the device key (64 hex digits or a key file) from the region's registry; "
        "without it the bundle's own key is used",
    )
    p.add_argument(
        "--region-key",
        metavar="HEX",
        help="the region's public key (64 hex digits or a key file) to check the "
        "region's signed acks with; without it the acks are NOT proved (checked against "
        "the bundle's own sync/region.pub only)",
    )
    p.add_argument(
        "--nonce",
        metavar="TEXT",
        help="the challenge you gave the export: exit 5 unless the bundle carries it",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when stderr is not a terminal",
    )
    p.set_defaults(handler=cmd_inspect_verify)

    receipt = _sub(sub.add_parser("receipt", help="signed receipt blocks (QR payloads)"))
    p = receipt.add_parser("verify", help="check a scanned receipt QR payload offline")
    add_json(p)
    p.add_argument("payload", help="the QR payload text (TB2*... or TB1*...)")
    p.add_argument(
        "--public-key",
        required=True,
        metavar="HEX",
        help="the device's public key: 64 hex digits or a file holding them (device.pub)",
    )
    p.set_defaults(handler=cmd_receipt_verify)
    p = till_command(receipt, "show", help="the QR payload of a receipt (recomputed from the log)")
    p.add_argument("receipt", help="the receipt number (or sale id)")
    p.add_argument("--refund", action="store_true", help="the number is a refund receipt")
    p.set_defaults(handler=cmd_receipt_show)

    privacy = _sub(
        sub.add_parser(
            "privacy", help="customers' personal data: consent, encrypted storage, erasure"
        )
    )
    p = till_command(privacy, "consent", help="record consent; prints the new customer id")
    p.add_argument(
        "--purpose",
        action="append",
        required=True,
        choices=["receipt_email", "engraving", "signature", "marketing"],
        help="what the data is for; repeat for more",
    )
    p.add_argument("--sync", action="store_true", help="the data may be sent to the region")
    p.add_argument("--wording", help="the consent text shown to the customer (hashed)")
    p.set_defaults(handler=cmd_privacy)
    p = till_command(privacy, "store", help="store personal data, encrypted with the customer key")
    p.add_argument("--customer", required=True)
    p.add_argument("--purpose", dest="store_purpose", required=True)
    p.add_argument("--field", action="append", metavar="NAME=VALUE")
    p.set_defaults(handler=cmd_privacy)
    p = till_command(privacy, "show", help="decrypt a customer's data")
    p.add_argument("--customer", required=True)
    p.set_defaults(handler=cmd_privacy)
    p = till_command(privacy, "erase", help="crypto-shred: delete the customer's key")
    p.add_argument("--customer", required=True)
    p.add_argument("--reason", default="customer request")
    p.set_defaults(handler=cmd_privacy)
