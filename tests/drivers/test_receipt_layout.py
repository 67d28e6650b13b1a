"""The receipt layout, pinned: a fixed payload must render to exactly this paper."""

from __future__ import annotations

from escpos.printer import Dummy

from drivers.escpos_sim import EscposInterpreter
from drivers.receipts import ShopHeader, receipt_lines, render_receipt, two_col

PAYLOAD = {
    "receipt_no": 42,
    "shift_no": 3,
    "currency": "EUR",
    "prices_include_tax": True,
    "lines": [
        {
            "line": 1,
            "sku": "POSTCARD",
            "name": "Postcard (Łódź)",
            "qty": 2,
            "unit_price_minor": 150,
            "amount_minor": 300,
            "discount_minor": 30,
            "gross_minor": 270,
        },
        {
            "line": 2,
            "sku": "BRATW",
            "name": "Bratwürst im Brötchen",
            "qty": 1,
            "unit_price_minor": 550,
            "amount_minor": 550,
            "discount_minor": 55,
            "gross_minor": 495,
        },
    ],
    "promotions": [{"id": "MARKET10", "kind": "percent", "code": "MARKET10", "discount_minor": 85}],
    "subtotal_minor": 850,
    "discount_minor": 85,
    "total_minor": 765,
    "taxes": [
        {"rate": "reduced", "rate_bp": 550, "net_minor": 469, "tax_minor": 26, "gross_minor": 495},
        {
            "rate": "standard",
            "rate_bp": 2000,
            "net_minor": 225,
            "tax_minor": 45,
            "gross_minor": 270,
        },
    ],
    "payment": {
        "method": "cash",
        "due_minor": 765,
        "rounding_minor": 0,
        "tendered_minor": 1000,
        "change_minor": 235,
    },
}
SHOP = ShopHeader("Stall Ü", "Rynek", "P-1", "Dziękujemy!", "t1")

EXPECTED_58MM = """\
    Stall Ü
             Rynek
           Permit P-1
--------------------------------
2 x Postcard (Łódź)     EUR 3.00
    @ EUR 1.50
Bratwürst im Brötchen   EUR 5.50
--------------------------------
Promotions
  MARKET10             -EUR 0.85
Subtotal                EUR 8.50
Discount               -EUR 0.85
TOTAL                   EUR 7.65
Paid cash              EUR 10.00
Change                  EUR 2.35
--------------------------------
VAT included
  reduced 5.5%          EUR 0.26
    net EUR 4.69 gross EUR 4.95
  standard 20%          EUR 0.45
    net EUR 2.25 gross EUR 2.70
--------------------------------
Receipt 42               shift 3
Till t1     2026-05-28 20:26 UTC
          Dziękujemy!"""


def paper(rows, qr=None, columns=32):
    data = render_receipt(Dummy(), rows, qr)
    interp = EscposInterpreter(columns)
    interp.feed(data)
    return data, interp


def test_58mm_receipt_renders_exactly():
    data, interp = paper(receipt_lines(PAYLOAD, SHOP, 32, 1_780_000_000_000))
    text = "\n".join(interp.text_lines()).rstrip("-\n ")
    assert text == EXPECTED_58MM
    assert data.startswith(b"\x1b@")  # ESC @: a known state for every receipt
    assert data.endswith(b"\x1bd\x06\x1dV\x00")  # feed 6 lines, full cut


def test_every_80mm_line_fits_and_amounts_align_right():
    _, interp = paper(receipt_lines(PAYLOAD, SHOP, 48, 1_780_000_000_000), columns=48)
    lines = interp.text_lines()
    assert max(len(line) for line in lines) == 48
    money_lines = [line for line in lines if line.endswith(("EUR 7.65", "EUR 2.35"))]
    assert [len(line) for line in money_lines] == [48, 48]


def test_qr_slot_and_reprint_mark():
    rows = receipt_lines(PAYLOAD, SHOP, 32, None, reprint=True)
    assert ("bold", "*** COPY (reprint) ***") in rows
    assert ("qr", "") in rows
    data, interp = paper(rows, qr="TB1*payload")
    assert b"\x1d(k\x0e\x001P0TB1*payload" in data  # GS ( k store: pL pH cn fn m data
    assert "[QR TB1*payload]" in "\n".join(interp.text_lines())


def test_two_col_never_cuts_the_amount():
    assert two_col("A very long item name indeed", "EUR 1234.50", 20) == "A very ~ EUR 1234.50"
    assert two_col("Bread", "EUR 2.00", 20) == "Bread       EUR 2.00"
    assert two_col("Long product name here", "EUR 2.00", 20).endswith(" EUR 2.00")
