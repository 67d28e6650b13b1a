"""The receipt layout, pinned: a fixed payload must render to exactly this paper."""

from __future__ import annotations

import re

from escpos.printer import Dummy
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.money import format_minor
from drivers.escpos_sim import EscposInterpreter
from drivers.layout import ShopHeader, receipt_lines, two_col
from drivers.layout import render as render_receipt

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


# -- the 58 mm findings, each read back by the independent reader -------------------------
def _reader():
    import importlib.util
    import sys
    from pathlib import Path

    if "escpos_reader" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "escpos_reader", Path(__file__).with_name("escpos_reader.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["escpos_reader"] = module
        spec.loader.exec_module(module)
    return sys.modules["escpos_reader"]


def decoded(rows, qr=None):
    return _reader().read(render_receipt(Dummy(), rows, qr))


def vat_payload(net, tax, gross, refund=False):
    payload = {
        **PAYLOAD,
        "lines": [{**PAYLOAD["lines"][1], "amount_minor": gross, "gross_minor": gross}],
        "promotions": [],
        "discount_minor": 0,
        "subtotal_minor": gross,
        "total_minor": gross,
        "taxes": [
            {"rate": "standard", "rate_bp": 2000, "net_minor": net, "tax_minor": tax,
             "gross_minor": gross},
        ],
        "payment": {"method": "card", "due_minor": gross},
    }  # fmt: skip
    if refund:
        payload.update(refund_id="r-1", sale_id="s-1", sale_receipt_no=41)
    return payload


def test_vat_row_keeps_every_digit_at_58mm():
    """``net EUR 21.50 gross EUR 25.8`` was cut to the paper; it must wrap instead."""
    doc = decoded(receipt_lines(vat_payload(2150, 430, 2580), SHOP, 32))
    assert max(line.columns for line in doc.lines) <= 32
    text = doc.texts
    assert any("net EUR 21.50" in t for t in text) and any("gross EUR 25.80" in t for t in text)
    assert not any(t.rstrip().endswith("EUR 25.8") for t in text)


def test_refund_vat_prints_negative():
    doc = decoded(receipt_lines(vat_payload(2150, 430, 2580, refund=True), SHOP, 32))
    vat = doc.texts[doc.texts.index("VAT included") :]
    assert any(t.endswith("-EUR 4.30") for t in vat)
    assert any("net -EUR 21.50" in t for t in vat) and any("gross -EUR 25.80" in t for t in vat)


def test_long_till_id_and_shop_name_wrap_whole_at_58mm():
    shop = ShopHeader("Bäckerei Müller am Marktplatz Łódź", "Rynek", "", "", "esc-p-till-0042")
    doc = decoded(receipt_lines(PAYLOAD, shop, 32, 1_780_000_000_000))
    assert max(line.columns for line in doc.lines) <= 32
    assert " ".join(line.text for line in doc.lines if line.double_width) == shop.name
    assert "esc-p-till-0042" in "".join(doc.texts)
    assert "2026-05-28 20:26 UTC" in [t.strip() for t in doc.texts]


def test_qr_is_printed_at_level_m_with_5_dot_modules_or_more():
    for dots in (384, 576):
        data = render_receipt(Dummy(), [("qr", "")], "TB1*payload", paper_dots=dots)
        (qr,) = _reader().read(data).qr_codes
        assert (qr.model, qr.ec_level, qr.data) == (2, "M", "TB1*payload")
        assert qr.module_dots >= 5
        assert qr.module_dots * (65 + 8) <= dots  # the worst-case receipt QR still fits


@settings(max_examples=60, deadline=None)
@given(
    columns=st.sampled_from([32, 48]),
    name=st.text(st.sampled_from("abcdefghij ÄÖÜäöüßŁłóźę-"), min_size=1, max_size=60),
    device=st.text(st.sampled_from("abcxyz0123456789-_"), min_size=1, max_size=64),
    amounts=st.lists(st.integers(0, 10**11), min_size=3, max_size=3),
    refund=st.booleans(),
)
def test_no_line_is_wider_than_the_paper_and_no_amount_is_cut(
    columns, name, device, amounts, refund
):
    net, tax, gross = amounts
    payload = vat_payload(net, tax, gross, refund)
    payload["lines"][0]["name"] = name
    shop = ShopHeader(name, name, name, name, device)
    doc = decoded(receipt_lines(payload, shop, columns, 1_780_000_000_000, reprint=refund))
    assert max(line.columns for line in doc.lines) <= columns
    sign = -1 if refund else 1
    joined = "\n".join(doc.texts)
    for minor in (sign * net, sign * tax, sign * gross, gross):
        assert re.search(rf"(^|\s){re.escape(format_minor(minor, 'EUR'))}($|\s)", joined, re.M)
    assert device in "".join(doc.texts)
