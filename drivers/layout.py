"""The layout of everything the receipt printer prints, and its ESC/POS bytes.

Sale and refund receipts (copies included), the Z report, the printer test page and
asset labels are each built here as rows of ``(style, text)`` that already fit the
paper, then written to an escpos ``Dummy`` by :func:`render`. Keeping the rows apart
from the bytes lets the kiosk show the same layout on screen.

The rules, for every document and paper width:

* no line is wider than the paper (a double-width title character takes 2 columns);
* an amount is never cut or split: a label and its amount share a line when they fit,
  otherwise the label wraps and the amount goes right-aligned on the next line;
* names, ids and free text wrap; only an item name may be shortened (marked ``~``),
  and never its amount;
* QR codes are model 2, error correction M, at :func:`qr_module_dots` dots per module
  (docs/formats.md, "Signed receipt block").
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from appliance.money import format_minor

if TYPE_CHECKING:
    from escpos.escpos import Escpos
    from PIL.Image import Image

    from appliance.devices import PrintDocument
    from drivers.printer import ReceiptPrinter

Row = tuple[str, str]  # (style, text); style: title, center, bold, text, rule, qr

QR_EC_LEVEL = "M"
QR_MODEL = 2
QR_MIN_MODULE_DOTS = 5
QR_MAX_MODULE_DOTS = 8
# The largest receipt payload (TB2, docs/formats.md: 362 bytes) is a version 14 code at
# level M: 73 modules. At 5 dots a module that is 365 of a 58 mm head's 384 dots, so on
# 58 mm the worst case keeps a narrower quiet zone (the paper's own margin adds to it);
# the module size is chosen for the symbol plus a 4-module quiet zone where that fits.
QR_WORST_CASE_MODULES = 73 + 2 * 4
# Printable dots per line when the printer profile does not say (203 dpi heads).
DOTS_BY_WIDTH_MM = {58: 384, 80: 576}

COPY_MARK = "*** COPY (reprint) ***"
TEST_SAMPLE = "Łódź · Brötchen · Café crème · Ærø"


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


# -- fitting text to the paper --------------------------------------------------------------
def wrap(text: str, columns: int, indent: str = "") -> list[str]:
    """``text`` in lines of at most ``columns``; words longer than a line are broken."""
    lines = textwrap.wrap(
        text,
        columns,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
        drop_whitespace=True,
    )
    return lines or [""]


def two_col(left: str, right: str, columns: int) -> str:
    """An item row: ``left`` and ``right`` on one line; ``left`` is cut (``~``), never ``right``."""
    room = columns - len(right) - 1
    if room < 1:
        return right
    if len(left) > room:
        left = left[: max(0, room - 1)] + "~"
    return left + " " * (columns - len(left) - len(right)) + right


def label_amount(label: str, amount: str, columns: int) -> list[str]:
    """A label and its amount: one line when both fit, else the label wraps above it."""
    if len(label) + 1 + len(amount) <= columns:
        return [label + " " * (columns - len(label) - len(amount)) + amount]
    bare = label.lstrip(" ")
    return [*wrap(bare, columns, label[: len(label) - len(bare)]), amount.rjust(columns)]


def pack(parts: list[str], columns: int, indent: str = "") -> list[str]:
    """Unbreakable ``parts`` (e.g. ``net EUR 2.25``) side by side, as many a line as fit."""
    lines: list[str] = []
    line = ""
    for part in parts:
        candidate = f"{line} {part}" if line else indent + part
        if line and len(candidate) > columns:
            lines.append(line)
            candidate = indent + part
        line = candidate
    if line:
        lines.append(line)
    return lines


def _rows(style: str, lines: list[str]) -> list[Row]:
    return [(style, line) for line in lines]


def _when(wall_ms: int | None) -> str:
    if wall_ms is None:
        return ""
    return datetime.fromtimestamp(wall_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(rate_bp: int) -> str:
    whole, frac = divmod(rate_bp, 100)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0") + "%"


def _header(shop: ShopHeader, columns: int) -> list[Row]:
    rows = _rows("title", wrap(shop.name, columns // 2)) if shop.name else []
    if shop.location:
        rows += _rows("center", wrap(shop.location, columns))
    if shop.permit:
        rows += _rows("center", wrap(f"Permit {shop.permit}", columns))
    return rows


def _till_row(shop: ShopHeader, when: str, columns: int) -> list[Row]:
    """``Till <id>`` and the time: an id of any length wraps, it is never cut."""
    if not (shop.device_id or when):
        return []
    label = f"Till {shop.device_id}"
    if not when:
        return _rows("text", wrap(label, columns))
    return _rows("text", label_amount(label, when, columns))


# -- documents ------------------------------------------------------------------------------
def receipt_lines(
    payload: dict[str, Any],
    shop: ShopHeader,
    columns: int,
    wall_ms: int | None = None,
    reprint: bool = False,
) -> list[Row]:
    """A sale's or refund's receipt; a reprint carries :data:`COPY_MARK`."""
    cur = payload.get("currency", "EUR")

    def money(minor: int) -> str:
        return format_minor(minor, cur)

    def pair(label: str, minor: int, style: str = "text") -> list[Row]:
        return _rows(style, label_amount(label, money(minor), columns))

    rows = _header(shop, columns)
    if reprint:
        rows.append(("bold", COPY_MARK))
    refund = "refund_id" in payload
    if refund:
        rows += _rows(
            "bold", wrap(f"REFUND of receipt {payload.get('sale_receipt_no', '?')}", columns)
        )
    rows.append(("rule", "-" * columns))
    for ln in payload.get("lines", []):
        qty, name = ln["qty"], ln.get("name") or ln["sku"]
        amount = ln.get("amount_minor", ln["gross_minor"])
        rows.append(
            ("text", two_col(f"{qty} x {name}" if qty != 1 else name, money(amount), columns))
        )
        if qty != 1 and "unit_price_minor" in ln:
            rows += _rows("text", pack([f"@ {money(ln['unit_price_minor'])}"], columns, "    "))
        pers = ln.get("personalisation")
        text = pers.get("text") if isinstance(pers, dict) else None
        if text:
            rows += _rows("text", wrap(f'"{text}"', columns, "    "))
    rows.append(("rule", "-" * columns))
    promos = [p for p in payload.get("promotions", []) if p.get("discount_minor")]
    if promos:
        rows.append(("text", "Promotions"))
        for promo in promos:
            rows += pair(f"  {promo['id']}", -promo["discount_minor"])
    if "subtotal_minor" in payload:
        rows += pair("Subtotal", payload["subtotal_minor"])
    if payload.get("discount_minor"):
        rows += pair("Discount", -payload["discount_minor"])
    if not payload.get("prices_include_tax", True):
        rows += pair("Tax", payload.get("tax_minor", 0))
    rows += pair("TOTAL", payload["total_minor"], "bold")
    pay = payload.get("payment", {})
    if pay.get("rounding_minor"):
        rows += pair("Cash rounding", pay["rounding_minor"])
        rows += pair("DUE", pay["due_minor"], "bold")
    method = pay.get("method", "")
    paid = pay.get("tendered_minor", pay.get("due_minor", payload["total_minor"]))
    label = {"cash": "Paid cash", "card": "Paid by card"}.get(method, f"Paid {method}")
    if refund:
        label = {"cash": "Refunded cash", "card": "Refunded to card"}.get(method, "Refunded")
    if pay.get("offline"):
        label += " (offline)"
    rows += pair(label, paid)
    if method == "cash" and not refund:
        rows += pair("Change", pay.get("change_minor", 0))
    rows.append(("rule", "-" * columns))
    taxes = payload.get("taxes", [])
    if taxes:
        included = payload.get("prices_include_tax", True)
        rows.append(("text", "VAT included" if included else "Tax added"))
    sign = -1 if refund else 1  # refunded VAT is negative, as on a fiscal receipt
    for tax in taxes:
        rows += pair(f"  {tax['rate']} {_percent(tax['rate_bp'])}", sign * tax["tax_minor"])
        parts = [
            f"net {money(sign * tax['net_minor'])}",
            f"gross {money(sign * tax['gross_minor'])}",
        ]
        rows += _rows("text", pack(parts, columns, "    "))
    rows.append(("rule", "-" * columns))
    rows += _rows(
        "text",
        label_amount(
            f"Receipt {payload['receipt_no']}", f"shift {payload.get('shift_no', '-')}", columns
        ),
    )
    rows += _till_row(shop, _when(wall_ms), columns)
    if reprint:
        rows.append(("bold", COPY_MARK))
    rows.append(("qr", ""))  # the compliance signature QR goes here
    if shop.footer:
        rows += _rows("center", wrap(shop.footer, columns))
    return rows


def z_report_lines(
    z: dict[str, Any],
    shop: ShopHeader,
    columns: int,
    currency: str = "EUR",
    closed_ms: int | None = None,
    reprint: bool = False,
) -> list[Row]:
    """The Z report of a closed shift (the ``z_report`` of its ``shift.closed`` event)."""

    def pair(label: str, minor: int, style: str = "text") -> list[Row]:
        return _rows(style, label_amount(label, format_minor(minor, currency), columns))

    rows = _rows("title", wrap(f"Z REPORT {z['shift_no']}", columns // 2))
    rows += _header(ShopHeader(shop.name, shop.location, shop.permit), columns)
    if reprint:
        rows.append(("bold", COPY_MARK))
    rows += _till_row(shop, _when(closed_ms), columns)
    rows.append(("rule", "-" * columns))
    rows += _rows("text", label_amount("Sales", str(z["sales_count"]), columns))
    rows += _rows("text", label_amount("Refunds", str(z["refunds_count"]), columns))
    for p in z["payments"]:
        rows += pair(f"  {p['method']} x{p['count']}", p["total_minor"])
    for r in z["refunds"]:
        rows += pair(f"  refund {r['method']} x{r['count']}", -r["total_minor"])
    rows.append(("rule", "-" * columns))
    if z["taxes"]:
        rows.append(("text", "VAT"))
    for t in z["taxes"]:
        rows += pair(f"  {t['rate']}", t["tax_minor"])
        parts = [
            f"net {format_minor(t['net_minor'], currency)}",
            f"gross {format_minor(t['gross_minor'], currency)}",
        ]
        rows += _rows("text", pack(parts, columns, "    "))
    rows.append(("rule", "-" * columns))
    rows += pair("Gross", z["gross_minor"])
    rows += pair("Tax", z["tax_minor"])
    if z.get("cash_rounding_minor"):
        rows += pair("Cash rounding", z["cash_rounding_minor"])
    rows += pair("TAKINGS", z["takings_minor"], "bold")
    if "expected_cash_minor" in z:  # shifts closed before the opening float lack it
        rows.append(("rule", "-" * columns))
        rows += pair("Opening float", z["opening_float_minor"])
        rows += pair("CASH IN DRAWER", z["expected_cash_minor"], "bold")
    return rows


def printer_test_lines(shop: ShopHeader, columns: int, profile_name: str) -> list[Row]:
    """``tillbox hw print-test``: column ruler, code pages, alignment, bold, QR."""
    rows = _rows("title", wrap("PRINTER TEST", columns // 2))
    if shop.name:
        rows += _rows("center", wrap(shop.name, columns))
    rows.append(("rule", "-" * columns))
    rows.append(("text", "".join(str(i % 10) for i in range(1, columns + 1))))
    rows += _rows("text", wrap(TEST_SAMPLE, columns))
    rows.append(("text", two_col("left", "right", columns)))
    rows.append(("bold", "bold"))
    rows.append(("qr", ""))
    rows += _rows("center", wrap(f"{columns} columns, profile {profile_name}", columns))
    return rows


TEST_PAGE_QR = "tillbox printer test"


def label_lines(lines: list[str], columns: int) -> list[Row]:
    """An asset or enrollment label: its text lines (wrapped), then the QR."""
    rows: list[Row] = []
    for line in lines:
        rows += _rows("text", wrap(line, columns))
    rows.append(("qr", ""))
    return rows


# -- bytes ----------------------------------------------------------------------------------
def qr_module_dots(paper_dots: int) -> int:
    """Dots per QR module: the largest that fits the worst-case code, never below 5."""
    fit = paper_dots // QR_WORST_CASE_MODULES
    return max(QR_MIN_MODULE_DOTS, min(QR_MAX_MODULE_DOTS, fit))


def _qr_image(payload: str, module: int, paper_dots: int) -> Image:
    """The QR as a raster for printers without native QR, centred on the paper."""
    import qrcode
    from PIL import Image

    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=module, border=4
    )
    code.add_data(payload.encode("ascii", "replace"))
    code.make(fit=True)
    # The quiet zone shrinks (to 1 module at least) before the image may outgrow the paper.
    spare = paper_dots // module - code.modules_count
    code.border = max(1, min(4, spare // 2))
    img = code.make_image().get_image().convert("1")
    width = max(paper_dots, img.width)
    page = Image.new("1", (width - width % 8, img.height), 1)
    page.paste(img, ((page.width - img.width) // 2, 0))
    return page


def render(
    doc: Escpos,  # an escpos printer (Dummy) with the target's profile
    rows: list[Row],
    qr_payload: str | None = None,
    native_qr: bool = True,
    paper_dots: int = DOTS_BY_WIDTH_MM[80],
    caption: Callable[[str], str] | None = None,
) -> bytes:
    """Write ``rows`` to ``doc`` and return its bytes, from ``ESC @`` to the cut."""
    from escpos.constants import QR_ECLEVEL_M, QR_MODEL_2

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
            if not qr_payload:
                continue
            module = qr_module_dots(paper_dots)
            doc.set(align="center")
            if native_qr:
                doc.qr(qr_payload, ec=QR_ECLEVEL_M, size=module, model=QR_MODEL_2, native=True)
            else:
                doc.image(_qr_image(qr_payload, module, paper_dots), impl="bitImageRaster")
            text = caption(qr_payload) if caption else ""
            if text:
                doc.textln(text)
            doc.set(align="left")
        else:
            doc.textln(text)
    doc.cut()
    return bytes(doc.output)


def document_bytes(
    printer: ReceiptPrinter,
    rows: list[Row],
    qr_payload: str | None = None,
    caption: Callable[[str], str] | None = None,
) -> bytes:
    """``rows`` as the exact bytes for ``printer`` (its profile, QR support and width)."""
    doc = printer.new_document()
    return render(
        doc,
        rows,
        qr_payload,
        native_qr=doc.profile.supports("qrCode"),
        paper_dots=printer.dots,
        caption=caption,
    )


def drawer_kick_bytes(printer: ReceiptPrinter, pin: int = 2) -> bytes:
    """The cash drawer's pulse (``ESC p``) through ``printer``."""
    doc = printer.new_document()
    doc.cashdraw(pin)
    return bytes(doc.output)


def cut_bytes(printer: ReceiptPrinter) -> bytes:
    """A paper cut on its own (``GS V``)."""
    doc = printer.new_document()
    doc.cut()
    return bytes(doc.output)


def document_rows(document: PrintDocument, columns: int) -> list[Row]:
    """The rows of a core :class:`~appliance.devices.PrintDocument` at ``columns``."""
    shop = ShopHeader.from_config(document.shop, document.device_id)
    if document.kind == "receipt":
        return receipt_lines(document.payload, shop, columns, document.wall_ms, document.reprint)
    if document.kind == "z_report":
        return z_report_lines(
            document.payload, shop, columns, document.currency, document.wall_ms, document.reprint
        )
    raise ValueError(f"no layout for a {document.kind!r} document")


def compose(printer: ReceiptPrinter, document: PrintDocument) -> bytes:
    """The exact bytes of a core :class:`~appliance.devices.PrintDocument` on ``printer``."""
    rows = document_rows(document, printer.columns)
    if document.kind == "receipt":
        caption = document.qr_caption
        return document_bytes(
            printer, rows, document.qr_payload, caption=(lambda _qr: caption) if caption else None
        )
    return document_bytes(printer, rows)


def preview_text(document: PrintDocument, columns: int) -> str:
    """The document as it would be laid out, as plain text (the QR as ``[QR]``)."""
    rows = document_rows(document, columns)
    return "\n".join(text if style != "qr" else "[QR]" for style, text in rows)
