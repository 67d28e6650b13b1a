"""Printing receipts and Z reports, in a way that never loses a sale.

The sale is durable before anything here runs. This module decides what to print
(original or copy, which QR), asks the printer (:class:`appliance.devices.Printer`) to
lay it out and send it, checks its status and records the outcome: ``receipt.printed``
or ``receipt.failed`` with the reason (and ``z_report.*`` for a Z report). A failed
receipt is in :meth:`appliance.till.Till.reprint_queue` until a reprint succeeds
(:func:`drain_reprint_queue`). Nothing here raises for a printer problem: the cashier
gets an outcome to show, and the next customer is served. The bytes are the drivers'
(``drivers.layout``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance import events as ev
from appliance import projections
from appliance.devices import DeviceError, PrintDocument
from appliance.errors import NotFound
from appliance.formats.chain import Event

if TYPE_CHECKING:
    from appliance.devices import Printer, PrinterStatus
    from appliance.till import Till

log = logging.getLogger("tillbox.services.printing")

QrSource = Callable[["Till", Event], "str | None"]


@dataclass(frozen=True)
class PrintOutcome:
    """What happened to one receipt. ``ok`` False means it is in the reprint queue."""

    ok: bool
    receipt_no: int
    message: str
    confirmed: bool = False  # the printer reported its status after printing
    event_seq: int | None = None
    status: dict[str, Any] = field(default_factory=dict)
    shift_no: int | None = None  # set for a Z report (then receipt_no is 0)
    reprint: bool = False  # laid out as a copy (the caller said so, or the log did)

    def to_json(self) -> dict[str, Any]:
        z = {} if self.shift_no is None else {"shift_no": self.shift_no}
        return {
            **z,
            "ok": self.ok,
            "receipt_no": self.receipt_no,
            "message": self.message,
            "confirmed": self.confirmed,
            "event_seq": self.event_seq,
            "status": self.status,
        }


def qr_caption(qr_payload: str | None) -> str:
    """The short code printed under the receipt's QR."""
    from appliance.formats.receipt import short_code

    return short_code(qr_payload) if qr_payload else ""


def default_qr_for(till: Till, event: Event) -> str | None:
    """The receipt's signed QR payload (``appliance.formats.receipt``)."""
    from appliance.formats.receipt import receipt_qr_payload

    return receipt_qr_payload(till, event)


def receipt_document(
    till: Till,
    payload: dict[str, Any],
    qr_payload: str | None = None,
    wall_ms: int | None = None,
    reprint: bool = False,
) -> PrintDocument:
    """What a receipt says (its items named), for the printer to lay out."""
    return PrintDocument(
        "receipt",
        _with_names(till, payload),
        dict(till.config.section("shop")),
        till.device_id,
        wall_ms,
        reprint,
        qr_payload,
        qr_caption(qr_payload),
    )


def _event_parts(sale: Event | dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    if isinstance(sale, Event):
        return sale.payload, sale.wall_ms
    return sale, None


def _with_names(till: Till, payload: dict[str, Any]) -> dict[str, Any]:
    """A refund's lines carry no item names; take them from the sale it refunds."""
    if "refund_id" not in payload or all(ln.get("name") for ln in payload.get("lines", [])):
        return payload
    try:
        sale = till.find_sale(payload["sale_id"]).payload
    except Exception:  # noqa: BLE001 - without names the SKUs print; never block a receipt
        return payload
    names = {ln["line"]: ln.get("name") for ln in sale.get("lines", [])}
    lines = [{**ln, "name": ln.get("name") or names.get(ln.get("line"))} for ln in payload["lines"]]
    return {**payload, "lines": lines}


def printed_before(till: Till, event_type: str, key: str, value: int, after_seq: int = 0) -> bool:
    """Whether the log holds an earlier print of this document, so the next one is a copy."""
    return projections.printed_before(till.log.conn, event_type, key, value, after_seq)


class _PrintFailed(Exception):
    def __init__(self, reason: str, sent: bool, status: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason, self.sent, self.status = reason, sent, status


def _send_checked(printer: Printer, data: bytes, what: str) -> PrinterStatus:
    """Send ``data`` between two status checks; the status after, or :class:`_PrintFailed`."""
    sent = False
    status: dict[str, Any] = {}
    try:
        before = printer.status()
        status = before.to_json()
        if not before.can_print:
            raise DeviceError(before.problem() or "printer cannot print")
        sent = True
        printer.send(data)
        after = printer.status()
        status = after.to_json()
        if after.paper == "out" or after.online is False or after.cover_open:
            raise DeviceError(f"printer stopped while printing {what} ({after.problem()})")
    except Exception as exc:
        if isinstance(exc, DeviceError):
            reason = str(exc)
        else:
            log.exception("%s failed", what)
            reason = f"{what} could not be printed ({type(exc).__name__}: {exc}); reprint it later"
        raise _PrintFailed(reason, sent, status) from None
    return after


def _paper(status: dict[str, Any]) -> str:
    """The paper level of the printer's last status answer ("unknown" without one): the
    region's fleet page reads it from these events (sync_agent/health.py)."""
    paper = status.get("paper")
    return paper if paper in ("ok", "near_end", "out") else "unknown"


def _printed_message(what: str, after: PrinterStatus) -> str:
    message = f"{what} printed"
    if not after.answered:
        message += " (printer gave no status; check it)"
    elif after.paper == "near_end":
        message += "; paper is running low, have a new roll ready"
    return message


def print_sale_receipt(
    till: Till,
    sale_event: Event | dict[str, Any],
    printer: Printer,
    qr_payload: str | None = None,
    *,
    reprint: bool = False,
) -> PrintOutcome:
    """Print one sale's receipt; record ``receipt.printed`` or ``receipt.failed``.

    Status is checked before (don't print into a printer that says it cannot) and
    after (paper that ran out mid-receipt). A printer that never answers status is
    printed to, and the receipt is recorded as printed but unconfirmed. Every print
    after the first is a copy (marked on paper, ``reprint: true`` in the log), whether
    or not the caller says so; the QR payload is the same.
    """
    payload, wall_ms = _event_parts(sale_event)
    receipt_no = int(payload["receipt_no"])
    try:
        after_seq = sale_event.seq if isinstance(sale_event, Event) else 0
        reprint = reprint or printed_before(
            till, ev.RECEIPT_PRINTED, "receipt_no", receipt_no, after_seq
        )
    except Exception:
        log.exception("could not tell whether receipt %s printed before", receipt_no)
        reprint = True  # a second original is the worse mistake
    base = {
        "receipt_no": receipt_no,
        "sale_id": payload.get("sale_id", ""),
        "printer": getattr(printer, "url", ""),
        "reprint": reprint,
    }
    if qr_payload:
        # The short code printed under the QR: the region cannot compute it (it is a hash
        # of the device's signature), so the log says it and the console finds receipts by it.
        base["code"] = qr_caption(qr_payload)
    try:
        try:
            document = receipt_document(till, payload, qr_payload, wall_ms, reprint)
            data = printer.compose(document)
        except Exception as exc:
            log.exception("receipt %s could not be laid out", receipt_no)
            raise _PrintFailed(
                f"receipt could not be printed ({type(exc).__name__}: {exc}); reprint it later",
                False,
                {},
            ) from None
        after = _send_checked(printer, data, f"receipt {receipt_no}")
    except _PrintFailed as failed:
        event = till.record(
            ev.RECEIPT_FAILED,
            {**base, "reason": failed.reason, "sent": failed.sent, "paper": _paper(failed.status)},
        )
        return PrintOutcome(
            False, receipt_no, failed.reason, False, event.seq, failed.status, reprint=reprint
        )
    confirmed = bool(after.answered)
    event = till.record(
        ev.RECEIPT_PRINTED,
        {**base, "confirmed": confirmed, "bytes": len(data), "paper": after.paper},
    )
    what = f"receipt {receipt_no}" + (" (copy)" if reprint else "")
    return PrintOutcome(
        True,
        receipt_no,
        _printed_message(what, after),
        confirmed,
        event.seq,
        after.to_json(),
        reprint=reprint,
    )


def print_z_report(
    till: Till, shift_event: Event, printer: Printer, *, reprint: bool = False
) -> PrintOutcome:
    """Print a closed shift's Z report; record ``z_report.printed`` or ``z_report.failed``.

    Like a receipt, it never raises for a printer problem: the shift close is already
    durable. A failed Z report is in :func:`z_reprint_queue`; ``receipt_no`` of the
    outcome is 0 and ``message`` names the shift.
    """
    z = shift_event.payload["z_report"]
    shift_no = int(z["shift_no"])
    try:
        reprint = reprint or printed_before(
            till, ev.Z_REPORT_PRINTED, "shift_no", shift_no, shift_event.seq
        )
    except Exception:
        log.exception("could not tell whether the Z report of shift %s printed before", shift_no)
        reprint = True
    base = {"shift_no": shift_no, "printer": getattr(printer, "url", ""), "reprint": reprint}
    what = f"Z report of shift {shift_no}"
    try:
        document = PrintDocument(
            "z_report",
            z,
            dict(till.config.section("shop")),
            till.device_id,
            shift_event.wall_ms,
            reprint,
            currency=till.profile().currency,
        )
        data = printer.compose(document)
        after = _send_checked(printer, data, what)
    except _PrintFailed as failed:
        reason = f"{failed.reason} (`tillbox hw reprint` prints it again)"
        event = till.record(
            ev.Z_REPORT_FAILED,
            {**base, "reason": reason, "sent": failed.sent, "paper": _paper(failed.status)},
        )
        return PrintOutcome(
            False, 0, reason, False, event.seq, failed.status, shift_no, reprint=reprint
        )
    except Exception as exc:
        log.exception("%s failed", what)
        reason = f"{what} could not be printed ({type(exc).__name__}: {exc}); reprint it later"
        event = till.record(
            ev.Z_REPORT_FAILED, {**base, "reason": reason, "sent": False, "paper": "unknown"}
        )
        return PrintOutcome(False, 0, reason, False, event.seq, {}, shift_no, reprint=reprint)
    event = till.record(
        ev.Z_REPORT_PRINTED,
        {**base, "confirmed": bool(after.answered), "bytes": len(data), "paper": after.paper},
    )
    what += " (copy)" if reprint else ""
    return PrintOutcome(
        True,
        0,
        _printed_message(what, after),
        bool(after.answered),
        event.seq,
        after.to_json(),
        shift_no,
        reprint=reprint,
    )


def z_reprint_queue(till: Till) -> list[int]:
    """Shift numbers whose Z report's last print attempt failed, oldest first."""
    return projections.z_reprint_queue(till.log.conn)


def shift_closed_event(till: Till, shift_no: int) -> Event:
    """The ``shift.closed`` event of ``shift_no`` (it carries the Z report)."""
    seq = projections.shift_closed_seq(till.log.conn, shift_no)
    event = till.log.event(seq) if seq else None
    if event is None:
        raise NotFound(f"shift {shift_no} is not closed on this till; check `tillbox shift status`")
    return event


def receipt_event(till: Till, receipt_no: int) -> Event:
    """The ``sale.completed`` or ``refund.issued`` event that has ``receipt_no``."""
    try:
        return till.find_sale(receipt_no)
    except NotFound:
        seq = projections.refund_seq(till.log.conn, receipt_no)
        event = till.log.event(seq) if seq else None
        if event is None:
            raise
        return event


def drain_reprint_queue(
    till: Till, printer: Printer, qr_for: QrSource | None = None
) -> list[PrintOutcome]:
    """Reprint every receipt, then every Z report, whose last attempt failed, oldest first.

    Each print is marked as a copy when an earlier attempt reached the paper. Stops
    at the first failure (a printer out of paper fails them all); the rest
    stay queued. ``qr_for(till, sale_event)`` supplies each receipt's QR payload.
    """
    outcomes: list[PrintOutcome] = []
    for receipt_no in till.reprint_queue():
        try:
            sale = receipt_event(till, receipt_no)
        except NotFound:
            log.warning("receipt %s in the reprint queue is not in the log; skipped", receipt_no)
            continue
        qr = qr_for(till, sale) if qr_for else None
        outcome = print_sale_receipt(till, sale, printer, qr)
        outcomes.append(outcome)
        if not outcome.ok:
            return outcomes
    for shift_no in z_reprint_queue(till):
        outcome = print_z_report(till, shift_closed_event(till, shift_no), printer)
        outcomes.append(outcome)
        if not outcome.ok:
            break
    return outcomes


def print_z_at_close(till: Till, event: Event, printer: Printer | None) -> dict[str, Any]:
    """After ``tillbox shift close``: print the Z report; never raises (the close is durable).

    ``printer`` is None when the till has none fitted. Returns ``{"printed": bool,
    "message": str}``; a failure is recorded and queued.
    """
    if printer is None:
        return {
            "printed": False,
            "message": "Z report not printed: no receipt printer fitted "
            "([hardware] printer = none://)",
        }
    outcome = print_z_report(till, event, printer)
    if outcome.ok:
        return {"printed": True, "message": outcome.message}
    return {"printed": False, "message": f"Z report not printed: {outcome.message}"}
