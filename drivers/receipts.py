"""Receipts: the layout of a ``sale.completed`` payload, and printing that never loses a sale.

The sale is durable before anything here runs. Printing either records
``receipt.printed`` or records ``receipt.failed`` with the reason; a failed
receipt is in :meth:`appliance.till.Till.reprint_queue` until a reprint succeeds
(:func:`drain_reprint_queue`). Nothing in this module raises for a printer
problem: the cashier gets an outcome to show, and the next customer is served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from appliance.chain import Event
from appliance.money import format_minor
from drivers.common import DeviceFault

log = logging.getLogger("tillbox.drivers.receipts")

RECEIPT_PRINTED = "receipt.printed"
RECEIPT_FAILED = "receipt.failed"
DRAWER_OPENED = "drawer.opened"
DEVICE_FAULT = "device.fault"


@dataclass(frozen=True)
class ShopHeader:
    name: str
    location: str = ""
    permit: str = ""
    footer: str = ""
    device_id: str = ""

    @classmethod
    def from_config(cls, shop: dict[str, Any], device_id: str = "") -> ShopHeader:
        return cls(
            str(shop.get("name", "")),
            str(shop.get("location", "")),
            str(shop.get("permit", "")),
            str(shop.get("receipt_footer", "")),
            device_id,
        )


@dataclass(frozen=True)
class PrintOutcome:
    """What happened to one receipt. ``ok`` False means it is in the reprint queue."""

    ok: bool
    receipt_no: int
    message: str
    confirmed: bool = False  # the printer reported its status after printing
    event_seq: int | None = None
    status: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "receipt_no": self.receipt_no,
            "message": self.message,
            "confirmed": self.confirmed,
            "event_seq": self.event_seq,
            "status": self.status,
        }


def _percent(rate_bp: int) -> str:
    whole, frac = divmod(rate_bp, 100)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0") + "%"


def two_col(left: str, right: str, columns: int) -> str:
    """``left`` and ``right`` on one line of ``columns``; ``left`` is cut, never ``right``."""
    room = columns - len(right) - 1
    if room < 1:
        return right[:columns]
    if len(left) > room:
        left = left[: max(0, room - 1)] + "~"
    return left + " " * (columns - len(left) - len(right)) + right


def receipt_lines(
    payload: dict[str, Any],
    shop: ShopHeader,
    columns: int,
    wall_ms: int | None = None,
    reprint: bool = False,
) -> list[tuple[str, str]]:
    """The receipt as (style, text) rows; ``style`` is one of title/center/bold/text/rule/qr.

    Kept separate from the bytes so the layout can be tested as text and reused by
    the kiosk's on-screen receipt.
    """
    cur = payload.get("currency", "EUR")

    def money(minor: int) -> str:
        return format_minor(minor, cur)

    rows: list[tuple[str, str]] = [("title", shop.name[: columns // 2])]
    if shop.location:
        rows.append(("center", shop.location))
    if shop.permit:
        rows.append(("center", f"Permit {shop.permit}"))
    if reprint:
        rows.append(("bold", "*** COPY (reprint) ***"))
    refund = "refund_id" in payload
    if refund:
        rows.append(("bold", f"REFUND of receipt {payload.get('sale_receipt_no', '?')}"))
    rows.append(("rule", "-" * columns))
    for ln in payload.get("lines", []):
        qty, name = ln["qty"], ln.get("name") or ln["sku"]
        amount = ln.get("amount_minor", ln["gross_minor"])
        rows.append(
            ("text", two_col(f"{qty} x {name}" if qty != 1 else name, money(amount), columns))
        )
        if qty != 1 and "unit_price_minor" in ln:
            rows.append(("text", f"    @ {money(ln['unit_price_minor'])}"))
        if ln.get("personalisation"):
            text = (
                ln["personalisation"].get("text")
                if isinstance(ln["personalisation"], dict)
                else None
            )
            if text:
                rows.append(("text", f'    "{text}"'))
    rows.append(("rule", "-" * columns))
    promos = [p for p in payload.get("promotions", []) if p.get("discount_minor")]
    if promos:
        rows.append(("text", "Promotions"))
        for promo in promos:
            label = f"  {promo['id']}"
            rows.append(("text", two_col(label, money(-promo["discount_minor"]), columns)))
    if "subtotal_minor" in payload:
        rows.append(("text", two_col("Subtotal", money(payload["subtotal_minor"]), columns)))
    if payload.get("discount_minor"):
        rows.append(("text", two_col("Discount", money(-payload["discount_minor"]), columns)))
    if not payload.get("prices_include_tax", True):
        rows.append(("text", two_col("Tax", money(payload.get("tax_minor", 0)), columns)))
    rows.append(("bold", two_col("TOTAL", money(payload["total_minor"]), columns)))
    pay = payload.get("payment", {})
    if pay.get("rounding_minor"):
        rows.append(("text", two_col("Cash rounding", money(pay["rounding_minor"]), columns)))
        rows.append(("bold", two_col("DUE", money(pay["due_minor"]), columns)))
    method = pay.get("method", "")
    paid = pay.get("tendered_minor", pay.get("due_minor", payload["total_minor"]))
    label = {"cash": "Paid cash", "card": "Paid by card"}.get(method, f"Paid {method}")
    if refund:
        label = {"cash": "Refunded cash", "card": "Refunded to card"}.get(method, "Refunded")
    if pay.get("offline"):
        label += " (offline)"
    rows.append(("text", two_col(label, money(paid), columns)))
    if method == "cash" and not refund:
        rows.append(("text", two_col("Change", money(pay.get("change_minor", 0)), columns)))
    rows.append(("rule", "-" * columns))
    taxes = payload.get("taxes", [])
    if taxes:
        rows.append(
            ("text", "VAT included" if payload.get("prices_include_tax", True) else "Tax added")
        )
    for tax in taxes:
        rows.append(
            (
                "text",
                two_col(
                    f"  {tax['rate']} {_percent(tax['rate_bp'])}", money(tax["tax_minor"]), columns
                ),
            )
        )
        rows.append(
            (
                "text",
                f"    net {money(tax['net_minor'])} gross {money(tax['gross_minor'])}"[:columns],
            )
        )
    rows.append(("rule", "-" * columns))
    when = ""
    if wall_ms is not None:
        when = datetime.fromtimestamp(wall_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows.append(
        (
            "text",
            two_col(
                f"Receipt {payload['receipt_no']}", f"shift {payload.get('shift_no', '-')}", columns
            ),
        )
    )
    if shop.device_id or when:
        rows.append(("text", two_col(f"Till {shop.device_id}", when, columns)))
    rows.append(("qr", ""))  # the compliance signature QR goes here
    if shop.footer:
        rows.append(("center", shop.footer))
    return rows


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


def render_receipt(
    doc: Any,
    rows: list[tuple[str, str]],
    qr_payload: str | None,  # noqa: ANN401
    native_qr: bool = True,
) -> bytes:
    """Write ``rows`` to an escpos ``Dummy`` (``doc``) and return its bytes, cut included."""
    doc.hw("INIT")
    for style, text in rows:
        if style == "title":
            doc.set(align="center", bold=True, double_height=True, double_width=True)
            doc.textln(text)
            doc.set(normal_textsize=True, bold=False, align="left")
        elif style == "center":
            doc.set(align="center")
            doc.textln(text)
            doc.set(align="left")
        elif style == "bold":
            doc.set(bold=True)
            doc.textln(text)
            doc.set(bold=False)
        elif style == "qr":
            if qr_payload:
                doc.set(align="center")
                doc.qr(qr_payload, size=4, native=native_qr, center=not native_qr)
                caption = qr_caption(qr_payload)
                if caption:
                    doc.textln(caption)
                doc.set(align="left")
        else:
            doc.textln(text)
    doc.cut()
    return bytes(doc.output)


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
    doc = printer.new_document()
    return render_receipt(doc, rows, qr_payload, native_qr=doc.profile.supports("qrCode"))


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
    printed to, and the receipt is recorded as printed but unconfirmed.
    """
    payload, wall_ms = _event_parts(sale_event)
    receipt_no = int(payload["receipt_no"])
    base = {
        "receipt_no": receipt_no,
        "sale_id": payload.get("sale_id", ""),
        "printer": getattr(printer, "url", ""),
        "reprint": reprint,
    }
    status: dict[str, Any] = {}
    try:
        shop = ShopHeader.from_config(till.config.section("shop"), till.device_id)
        data = receipt_bytes(
            _with_names(till, payload), shop, printer, qr_payload, wall_ms, reprint
        )
        before = printer.status()
        status = before.to_json()
        if not before.can_print:
            raise DeviceFault(before.problem() or "printer cannot print")
        printer.send(data)
        after = printer.status()
        status = after.to_json()
        if after.paper == "out" or after.online is False or after.cover_open:
            raise DeviceFault(
                f"printer stopped while printing receipt {receipt_no} ({after.problem()})"
            )
    except Exception as exc:  # noqa: BLE001 - a print problem must never reach the sale
        reason = (
            str(exc)
            if isinstance(exc, DeviceFault)
            else f"receipt could not be printed ({type(exc).__name__}: {exc}); reprint it later"
        )
        if not isinstance(exc, DeviceFault):
            log.exception("receipt %s failed", receipt_no)
        event = till.record(RECEIPT_FAILED, {**base, "reason": reason})
        return PrintOutcome(False, receipt_no, reason, False, event.seq, status)
    confirmed = bool(after.answered)
    event = till.record(RECEIPT_PRINTED, {**base, "confirmed": confirmed, "bytes": len(data)})
    message = f"receipt {receipt_no} printed"
    if not confirmed:
        message += " (printer gave no status; check it)"
    elif after.paper == "near_end":
        message += "; paper is running low, have a new roll ready"
    return PrintOutcome(True, receipt_no, message, confirmed, event.seq, status)


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
    """Reprint every receipt whose last attempt failed, oldest first.

    Stops at the first failure (a printer out of paper fails them all); the rest
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
        outcome = print_sale_receipt(till, sale, printer, qr, reprint=True)
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
