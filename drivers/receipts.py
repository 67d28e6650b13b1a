"""Printing receipts and Z reports, in a way that never loses a sale.

The layout (rows, wrapping, QR parameters, bytes) is :mod:`drivers.layout`'s; this
module decides what to print, checks the printer and records the outcome. The sale
is durable before anything here runs. Printing either records
``receipt.printed`` or records ``receipt.failed`` with the reason; a failed
receipt is in :meth:`appliance.till.Till.reprint_queue` until a reprint succeeds
(:func:`drain_reprint_queue`). Nothing in this module raises for a printer
problem: the cashier gets an outcome to show, and the next customer is served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.chain import Event
from drivers.common import DeviceFault
from drivers.layout import (  # noqa: F401 - ShopHeader, two_col: re-exported for callers
    ShopHeader,
    document_bytes,
    receipt_lines,
    render,
    two_col,
    z_report_lines,
)

log = logging.getLogger("tillbox.drivers.receipts")

RECEIPT_PRINTED = "receipt.printed"
RECEIPT_FAILED = "receipt.failed"
DRAWER_OPENED = "drawer.opened"
DEVICE_FAULT = "device.fault"
Z_REPORT_PRINTED = "z_report.printed"
Z_REPORT_FAILED = "z_report.failed"


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


def qr_caption(qr_payload: str) -> str:
    """The short code printed under the QR (the compliance helper defines it), if any."""
    try:
        from appliance.receipt_sig import short_code
    except ImportError:
        return ""
    return short_code(qr_payload)


def default_qr_for(till: Any, event: Event) -> str | None:  # noqa: ANN401
    """The receipt's signed QR payload from ``appliance.receipt_sig``, when it exists."""
    try:
        from appliance.receipt_sig import receipt_qr_payload
    except ImportError:
        return None
    return receipt_qr_payload(till, event)


render_receipt = render  # the receipt's bytes from its rows (tests and the kiosk)


def receipt_bytes(
    payload: dict[str, Any],
    shop: ShopHeader,
    printer: Any,  # noqa: ANN401
    qr_payload: str | None = None,
    wall_ms: int | None = None,
    reprint: bool = False,
) -> bytes:
    """The exact bytes a receipt is sent as, for ``printer`` (its profile and columns)."""
    rows = receipt_lines(payload, shop, printer.columns, wall_ms, reprint)
    return document_bytes(printer, rows, qr_payload, caption=qr_caption)


def _event_parts(sale: Event | dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    if isinstance(sale, Event):
        return sale.payload, sale.wall_ms
    return sale, None


def _with_names(till: Any, payload: dict[str, Any]) -> dict[str, Any]:  # noqa: ANN401
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


def printed_before(till: Any, event_type: str, key: str, value: int, after_seq: int = 0) -> bool:  # noqa: ANN401
    """Whether the log holds an earlier print of this document, so the next one is a copy.

    ``event_type`` is the ``*.printed`` type; its ``*.failed`` twin counts too when the
    bytes had been sent (paper that ran out half way may have handed out an original;
    failures recorded before ``sent`` existed count, to be safe).
    """
    failed = event_type.rsplit(".", 1)[0] + ".failed"
    row = till.log.conn.execute(
        "SELECT 1 FROM events WHERE seq > ? AND type IN (?, ?) "
        "AND json_extract(payload, ?) = ? "
        "AND (type = ? OR json_extract(payload, '$.sent') IS NOT 0) LIMIT 1",
        (after_seq, event_type, failed, f"$.{key}", value, event_type),
    ).fetchone()
    return row is not None


class _PrintFailed(Exception):
    def __init__(self, reason: str, sent: bool, status: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason, self.sent, self.status = reason, sent, status


def _send_checked(printer: Any, data: bytes, what: str) -> Any:  # noqa: ANN401
    """Send ``data`` between two status checks; the status after, or :class:`_PrintFailed`."""
    sent = False
    status: dict[str, Any] = {}
    try:
        before = printer.status()
        status = before.to_json()
        if not before.can_print:
            raise DeviceFault(before.problem() or "printer cannot print")
        sent = True
        printer.send(data)
        after = printer.status()
        status = after.to_json()
        if after.paper == "out" or after.online is False or after.cover_open:
            raise DeviceFault(f"printer stopped while printing {what} ({after.problem()})")
    except Exception as exc:  # noqa: BLE001 - a print problem must never reach the sale
        if isinstance(exc, DeviceFault):
            reason = str(exc)
        else:
            log.exception("%s failed", what)
            reason = f"{what} could not be printed ({type(exc).__name__}: {exc}); reprint it later"
        raise _PrintFailed(reason, sent, status) from None
    return after


def _printed_message(what: str, after: Any) -> str:  # noqa: ANN401
    message = f"{what} printed"
    if not after.answered:
        message += " (printer gave no status; check it)"
    elif after.paper == "near_end":
        message += "; paper is running low, have a new roll ready"
    return message


def print_sale_receipt(
    till: Any,
    sale_event: Event | dict[str, Any],  # noqa: ANN401
    printer: Any,
    qr_payload: str | None = None,
    *,  # noqa: ANN401
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
    status: dict[str, Any] = {}
    try:
        after_seq = sale_event.seq if isinstance(sale_event, Event) else 0
        reprint = reprint or printed_before(
            till, RECEIPT_PRINTED, "receipt_no", receipt_no, after_seq
        )
    except Exception:  # noqa: BLE001 - an unreadable log must not stop the receipt
        log.exception("could not tell whether receipt %s printed before", receipt_no)
        reprint = True  # a second original is the worse mistake
    base = {
        "receipt_no": receipt_no,
        "sale_id": payload.get("sale_id", ""),
        "printer": getattr(printer, "url", ""),
        "reprint": reprint,
    }
    try:
        try:
            shop = ShopHeader.from_config(till.config.section("shop"), till.device_id)
            data = receipt_bytes(
                _with_names(till, payload), shop, printer, qr_payload, wall_ms, reprint
            )
        except Exception as exc:  # noqa: BLE001 - a layout bug must not reach the sale
            log.exception("receipt %s could not be laid out", receipt_no)
            raise _PrintFailed(
                f"receipt could not be printed ({type(exc).__name__}: {exc}); reprint it later",
                False,
                {},
            ) from None
        after = _send_checked(printer, data, f"receipt {receipt_no}")
    except _PrintFailed as failed:
        event = till.record(RECEIPT_FAILED, {**base, "reason": failed.reason, "sent": failed.sent})
        return PrintOutcome(False, receipt_no, failed.reason, False, event.seq, failed.status)
    status = after.to_json()
    confirmed = bool(after.answered)
    event = till.record(RECEIPT_PRINTED, {**base, "confirmed": confirmed, "bytes": len(data)})
    what = f"receipt {receipt_no}" + (" (copy)" if reprint else "")
    return PrintOutcome(
        True, receipt_no, _printed_message(what, after), confirmed, event.seq, status
    )


def print_z_report(
    till: Any,  # noqa: ANN401
    shift_event: Event,
    printer: Any,  # noqa: ANN401
    *,
    reprint: bool = False,
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
            till, Z_REPORT_PRINTED, "shift_no", shift_no, shift_event.seq
        )
    except Exception:  # noqa: BLE001
        log.exception("could not tell whether the Z report of shift %s printed before", shift_no)
        reprint = True
    base = {"shift_no": shift_no, "printer": getattr(printer, "url", ""), "reprint": reprint}
    what = f"Z report of shift {shift_no}"
    try:
        shop = ShopHeader.from_config(till.config.section("shop"), till.device_id)
        rows = z_report_lines(
            z, shop, printer.columns, till.profile().currency, shift_event.wall_ms, reprint
        )
        data = document_bytes(printer, rows)
        after = _send_checked(printer, data, what)
    except _PrintFailed as failed:
        reason = f"{failed.reason} (`tillbox hw reprint` prints it again)"
        event = till.record(Z_REPORT_FAILED, {**base, "reason": reason, "sent": failed.sent})
        return PrintOutcome(False, 0, reason, False, event.seq, failed.status, shift_no)
    except Exception as exc:  # noqa: BLE001 - a printer problem never fails the close
        log.exception("%s failed", what)
        reason = f"{what} could not be printed ({type(exc).__name__}: {exc}); reprint it later"
        event = till.record(Z_REPORT_FAILED, {**base, "reason": reason, "sent": False})
        return PrintOutcome(False, 0, reason, False, event.seq, {}, shift_no)
    event = till.record(
        Z_REPORT_PRINTED, {**base, "confirmed": bool(after.answered), "bytes": len(data)}
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
    )


def z_reprint_queue(till: Any) -> list[int]:  # noqa: ANN401
    """Shift numbers whose Z report's last print attempt failed, oldest first."""
    last: dict[int, str] = {}
    for shift_no, kind in till.log.conn.execute(
        "SELECT json_extract(payload, '$.shift_no'), type FROM events "
        "WHERE type IN (?, ?) ORDER BY seq",
        (Z_REPORT_PRINTED, Z_REPORT_FAILED),
    ):
        last[int(shift_no)] = kind
    return sorted(n for n, kind in last.items() if kind == Z_REPORT_FAILED)


def shift_closed_event(till: Any, shift_no: int) -> Event:  # noqa: ANN401
    """The ``shift.closed`` event of ``shift_no`` (it carries the Z report)."""
    from appliance.errors import NotFound

    row = till.log.conn.execute(
        "SELECT closed_seq FROM shifts WHERE shift_no = ?", (int(shift_no),)
    ).fetchone()
    event = till.log.event(row[0]) if row and row[0] else None
    if event is None:
        raise NotFound(f"shift {shift_no} is not closed on this till; check `tillbox shift status`")
    return event


QrSource = Callable[[Any, Event], str | None]


def receipt_event(till: Any, receipt_no: int) -> Event:  # noqa: ANN401
    """The ``sale.completed`` or ``refund.issued`` event that has ``receipt_no``."""
    from appliance.errors import NotFound

    try:
        return till.find_sale(receipt_no)
    except NotFound:
        row = till.log.conn.execute(
            "SELECT seq FROM refunds WHERE receipt_no = ?", (int(receipt_no),)
        ).fetchone()
        event = till.log.event(row[0]) if row else None
        if event is None:
            raise
        return event


def drain_reprint_queue(
    till: Any,
    printer: Any,  # noqa: ANN401
    qr_for: QrSource | None = None,
) -> list[PrintOutcome]:
    """Reprint every receipt, then every Z report, whose last attempt failed, oldest first.

    Each print is marked as a copy when an earlier attempt reached the paper. Stops
    at the first failure (a printer out of paper fails them all); the rest
    stay queued. ``qr_for(till, sale_event)`` supplies each receipt's QR payload.
    """
    from appliance.errors import NotFound

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


def open_drawer(
    till: Any,
    printer: Any,
    reason: str = "sale",  # noqa: ANN401
    receipt_no: int | None = None,
) -> int:
    """Kick the cash drawer through the printer (``ESC p``) and record ``drawer.opened``.

    Returns the event's seq. A failed kick records ``device.fault`` and raises
    :class:`DeviceFault` so the cashier knows to open the drawer by key.
    """
    try:
        printer.kick_drawer()
        printer.status()  # a write into a dead connection "succeeds"; a question does not
    except DeviceFault as exc:
        till.record(
            DEVICE_FAULT,
            {"device": "drawer", "url": getattr(printer, "url", ""), "message": str(exc)},
        )
        raise DeviceFault(f"cash drawer did not open ({exc}); open it with the key") from None
    payload: dict[str, Any] = {"reason": reason, "via": "printer"}
    if receipt_no is not None:
        payload["receipt_no"] = receipt_no
    return till.record(DRAWER_OPENED, payload).seq
