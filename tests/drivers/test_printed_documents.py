"""Every printed document at 58 and 80 mm, decoded by an independent ESC/POS reader.

Sale, refund, copy, Z report, test page and asset labels go through the real code
paths to a ``file://`` printer (so the bytes are exactly what a printer receives) and
are read back with ``tests/drivers/escpos_reader.py``, which shares no code with the
layout. Long shop names, long device ids, amounts over 1,000.00, non-ASCII names and
both tax modes (VAT included, tax added).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import qrcode
import zxingcpp

from appliance.datadir import DataDir
from appliance.money import format_minor
from appliance.pricing import CartLine
from appliance.services.printing import (
    default_qr_for,
    drain_reprint_queue,
    print_sale_receipt,
    receipt_event,
)
from appliance.testing import run_cli as run
from appliance.testing import worst_case_tb2_fields
from appliance.till import Till
from drivers.printer import ReceiptPrinter

_spec = importlib.util.spec_from_file_location(
    "escpos_reader", Path(__file__).with_name("escpos_reader.py")
)
reader = importlib.util.module_from_spec(_spec)
sys.modules["escpos_reader"] = reader  # dataclasses look their module up there
_spec.loader.exec_module(reader)

COLUMNS = {58: 32, 80: 48}
DOTS = {58: 384, 80: 576}
LONG_ID = "esc-pos-market-stall-till-0042-" + "k" * 20  # 51 characters
SHOP = {
    "name": "Wochenmarkt Łódź-Bałuty Spezialitäten und Söhne",
    "location": "Plac Wolności 12, 90-001 Łódź, Polska",
    "permit": "MARKT-2026-ŁÓDŹ-000123",
    "receipt_footer": "Dziękujemy za zakupy! Vielen Dank für Ihren Einkauf!",
}
ITEMS = [
    {
        "sku": "TABLE",
        "name": "Handgeschnitzter Eichentisch mit Intarsien (Großformat)",
        "price_minor": 125000,
        "tax_rate": "standard",
        "category": "furniture",
        "initial_stock": 10,
    },
    {
        "sku": "HONIG",
        "name": "Blütenhonig",
        "price_minor": 2580,
        "tax_rate": "reduced",
        "category": "food",
        "initial_stock": 50,
    },
]
AMOUNT = re.compile(r"-?(?:EUR|USD) \d+\.\d\d(?!\d)")


class Paper:
    """A ``file://`` printer's output file; ``take()`` decodes what was added since."""

    def __init__(self, path: Path, mm: int) -> None:
        self.path, self.mm, self.offset = path, mm, 0
        path.write_bytes(b"")
        self.url = f"file://{path}"

    def take(self) -> reader.Document:
        data = self.path.read_bytes()[self.offset :]
        self.offset += len(data)
        assert data, "nothing was printed"
        return reader.read(data)


@pytest.fixture(params=[(58, "eu-market"), (80, "eu-market"), (58, "us-fair"), (80, "us-fair")])
def shop(request, tmp_path):
    mm, profile = request.param
    ddir = DataDir(tmp_path / "till")
    with Till.init(ddir, LONG_ID, demo=True) as till:
        catalog = till.catalog().to_json()
        catalog["items"] += ITEMS
        catalog["version"] = "long-names-1"
        till.apply_catalog(catalog)
    paper = Paper(tmp_path / "printer.bin", mm)
    config = ddir.load_config()
    config.update("shop", **SHOP, tax_profile=profile)
    config.update("hardware", printer=paper.url, paper_width_mm=mm)
    ddir.save_config(config)
    till = Till.open(ddir)
    till.open_shift()
    printer = ReceiptPrinter(paper.url, paper_width_mm=mm, timeout=1.0)
    yield till, printer, paper
    printer.shutdown()
    till.close()


def assert_fits(doc, mm):
    too_wide = [(line.columns, line.text) for line in doc.lines if line.columns > COLUMNS[mm]]
    assert not too_wide, too_wide


def amounts_on(doc) -> list[str]:
    return [m for line in doc.texts for m in AMOUNT.findall(line)]


def assert_amounts_whole(doc, expected):
    """Every amount is on the paper whole, and nothing that looks like a cut amount is."""
    found = amounts_on(doc)
    missing = [a for a in expected if a not in found]
    assert not missing, (missing, doc.text())
    # a cut amount (``EUR 25.8``) or one split over two lines leaves a stub behind
    stubs = [line for line in doc.texts if re.search(r"(EUR|USD) ?-?\d*\.?\d?$", line)]
    stubs = [s for s in stubs if not AMOUNT.search(s[-16:])]
    assert not stubs, stubs


def assert_header(doc):
    """The shop name wraps on double-width lines; every word is there, nothing cut."""
    title = [line.text for line in doc.lines if line.double_width]
    assert " ".join(title) == SHOP["name"]
    assert " ".join(doc.texts).count(SHOP["location"].split()[-1]) >= 1
    for word in SHOP["location"].split() + SHOP["receipt_footer"].split():
        assert word in doc.text()


def assert_till_id(doc):
    assert LONG_ID in "".join(doc.texts), doc.text()


def read_qr(img):
    """QR symbols only, as the till's scanner reads them: with every format on, zxing
    now and then also finds a short Codabar inside a QR's modules (seen in CI)."""
    return zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)


def assert_qr(doc, mm, data):
    (qr,) = doc.qr_codes
    assert (qr.model, qr.ec_level, qr.data) == (2, "M", data)
    assert qr.module_dots >= 5
    # the printed symbol fits the paper with its quiet zone, and decodes at that size
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=qr.module_dots, border=4
    )
    code.add_data(data.encode("ascii"))
    code.make(fit=True)
    img = code.make_image().get_image().convert("L")
    assert img.width <= DOTS[mm], (img.width, DOTS[mm])
    (found,) = read_qr(img)
    assert found.text == data and found.ec_level == "M"


def receipt_amounts(payload, refund=False) -> list[str]:
    cur = payload["currency"]
    sign = -1 if refund else 1
    out = [format_minor(payload["total_minor"], cur)]
    out += [
        format_minor(ln["amount_minor"], cur) for ln in payload["lines"] if "amount_minor" in ln
    ]
    for t in payload["taxes"]:
        out += [format_minor(sign * t[k], cur) for k in ("tax_minor", "net_minor", "gross_minor")]
    if not refund:
        out.append(format_minor(payload["payment"]["change_minor"], cur))
        out.append(format_minor(payload["payment"]["tendered_minor"], cur))
    return out


def big_sale(till):
    return till.sell(
        [CartLine("TABLE", 2), CartLine("HONIG", 3), CartLine("POSTCARD", 1)],
        "cash",
        tendered=300000,
    ).event


def test_sale_receipt_fits_and_keeps_every_amount_whole(shop):
    till, printer, paper = shop
    mm = paper.mm
    sale = big_sale(till)
    qr = default_qr_for(till, sale)
    assert print_sale_receipt(till, sale, printer, qr).ok
    doc = paper.take()
    assert_fits(doc, mm)
    assert_amounts_whole(doc, receipt_amounts(sale.payload))
    assert format_minor(250000, sale.payload["currency"]) in amounts_on(doc)  # over 1,000.00
    assert_header(doc)
    assert_till_id(doc)
    assert_qr(doc, mm, qr)
    assert doc.cuts == 1 and "COPY" not in doc.text()
    # only an item name may be shortened, with a visible marker, never its amount
    table = next(line for line in doc.texts if line.endswith("2500.00"))
    assert ITEMS[0]["name"] in table or "~" in table
    assert "Blütenhonig" in doc.text()


def test_vat_rows_wrap_instead_of_losing_digits_at_58mm(shop):
    """The issue's case: net and gross both at least 10.00 on 32 columns."""
    till, printer, paper = shop
    sale = till.sell([CartLine("HONIG", 1)], "card").event
    assert print_sale_receipt(till, sale, printer).ok
    doc = paper.take()
    assert_fits(doc, paper.mm)
    cur = sale.payload["currency"]
    for tax in sale.payload["taxes"]:
        for key in ("net_minor", "gross_minor", "tax_minor"):
            assert format_minor(tax[key], cur) in amounts_on(doc)


def test_refund_receipt_prints_vat_negative(shop):
    till, printer, paper = shop
    sale = big_sale(till)
    refund = till.refund(sale.payload["sale_id"], [("TABLE", 1)]).event
    assert print_sale_receipt(till, refund, printer, default_qr_for(till, refund)).ok
    doc = paper.take()
    assert_fits(doc, paper.mm)
    assert_amounts_whole(doc, receipt_amounts(refund.payload, refund=True))
    texts = doc.texts
    vat = texts[next(i for i, t in enumerate(texts) if t.startswith(("VAT", "Tax added"))) :]
    vat = vat[: next(i for i, t in enumerate(vat) if set(t) == {"-"})]
    vat_amounts = [a for line in vat for a in AMOUNT.findall(line)]
    assert vat_amounts and all(a.startswith("-") for a in vat_amounts), vat
    assert_qr(doc, paper.mm, default_qr_for(till, refund))


def test_every_print_after_the_first_is_a_marked_copy(shop):
    till, printer, paper = shop
    sale = big_sale(till)
    qr = default_qr_for(till, sale)
    assert print_sale_receipt(till, sale, printer, qr).ok
    first = paper.take()
    # the CLI path: `hw print-receipt` on a receipt that already printed
    code, out, err = run(
        "hw", "print-receipt", "--data-dir", str(till.data_dir.root), "--receipt",
        str(sale.payload["receipt_no"]), "--json",
    )  # fmt: skip
    assert code == 0, err
    copy = paper.take()
    assert "COPY" not in first.text()
    assert "*** COPY (reprint) ***" in copy.texts
    assert_fits(copy, paper.mm)
    assert copy.qr_codes[0].data == first.qr_codes[0].data == qr  # the same signed payload
    assert_amounts_whole(copy, receipt_amounts(sale.payload))
    printed = [e.payload for e in till.log.events(0) if e.type == "receipt.printed"]
    assert [p["reprint"] for p in printed] == [False, True]


def test_a_receipt_refused_before_printing_is_an_original_when_drained(shop, tmp_path):
    till, printer, paper = shop
    sale = big_sale(till)
    dead = ReceiptPrinter("tcp://127.0.0.1:9", timeout=0.5)
    assert not print_sale_receipt(till, sale, dead).ok
    assert till.reprint_queue() == [sale.payload["receipt_no"]]
    [outcome] = drain_reprint_queue(till, printer, default_qr_for)
    assert outcome.ok
    assert "COPY" not in paper.take().text()  # no paper came out before: this is the original
    assert print_sale_receipt(till, receipt_event(till, sale.payload["receipt_no"]), printer).ok
    assert "*** COPY (reprint) ***" in paper.take().texts


def test_z_report_prints_with_the_layout_rules(shop):
    from appliance.services.printing import print_z_report

    till, printer, paper = shop
    sale = big_sale(till)
    till.refund(sale.payload["sale_id"], [("HONIG", 1)])
    till.sell([CartLine("HONIG", 2)], "card")
    closed = till.close_shift()
    outcome = print_z_report(till, closed, printer)
    assert outcome.ok and outcome.shift_no == 1
    doc = paper.take()
    assert_fits(doc, paper.mm)
    z = closed.payload["z_report"]
    cur = till.profile().currency
    expected = [format_minor(z[k], cur) for k in ("takings_minor", "gross_minor", "tax_minor")]
    expected += [format_minor(p["total_minor"], cur) for p in z["payments"]]
    expected += [format_minor(-r["total_minor"], cur) for r in z["refunds"]]
    for t in z["taxes"]:
        expected += [format_minor(t[k], cur) for k in ("tax_minor", "net_minor", "gross_minor")]
    assert_amounts_whole(doc, expected)
    assert_till_id(doc)
    assert "Z REPORT 1" in " ".join(doc.texts)
    assert doc.cuts == 1
    # a second print is a copy, on paper and in the log
    assert print_z_report(till, closed, printer).ok
    assert "*** COPY (reprint) ***" in paper.take().texts
    logged = [e.payload["reprint"] for e in till.log.events(0) if e.type == "z_report.printed"]
    assert logged == [False, True]


def test_z_report_prints_the_opening_float_and_the_cash_in_the_drawer(shop):
    from appliance.services.printing import print_z_report

    till, printer, paper = shop
    till.close_shift()
    till.open_shift(12345)  # counted into the drawer
    till.sell([CartLine("HONIG", 2)], "cash")
    till.sell([CartLine("HONIG", 1)], "card")  # not in the drawer
    closed = till.close_shift()
    assert print_z_report(till, closed, printer).ok
    doc = paper.take()
    assert_fits(doc, paper.mm)
    z = closed.payload["z_report"]
    cur = till.profile().currency
    cash = next(p["total_minor"] for p in z["payments"] if p["method"] == "cash")
    assert z["expected_cash_minor"] == 12345 + cash
    lines = [" ".join(line.split()) for line in doc.texts]
    assert f"Opening float {format_minor(12345, cur)}" in lines
    assert f"CASH IN DRAWER {format_minor(12345 + cash, cur)}" in lines


def test_test_page_fits_every_width(shop):
    till, printer, paper = shop
    code, out, err = run("hw", "print-test", "--data-dir", str(till.data_dir.root), "--json")
    assert code == 0, err
    doc = paper.take()
    assert_fits(doc, paper.mm)
    assert "".join(str(i % 10) for i in range(1, COLUMNS[paper.mm] + 1)) in doc.texts
    for word in "Łódź · Brötchen · Café crème · Ærø".split():
        assert word in doc.text()
    assert_qr(doc, paper.mm, "tillbox printer test")


def test_asset_labels_fit_and_carry_an_m_level_qr(shop):
    till, printer, paper = shop
    tag = f"{LONG_ID[:28]}-A01"
    payload = f"TBA1*{LONG_ID}*{tag}"
    printer.print_label(payload, [tag, "Thermodrucker für Quittungen, 80 mm", LONG_ID])
    doc = paper.take()
    assert_fits(doc, paper.mm)
    assert tag in "".join(doc.texts) and LONG_ID in "".join(doc.texts)
    assert_qr(doc, paper.mm, payload)


@pytest.mark.parametrize("mm", [58, 80])
def test_raster_qr_for_printers_without_native_qr_decodes(tmp_path, till, sale, mm):
    """POS-5890 has no GS ( k: the QR goes as a GS v 0 raster, which must still scan."""
    paper = Paper(tmp_path / "p.bin", mm)
    printer = ReceiptPrinter(paper.url, profile="POS-5890", paper_width_mm=mm)
    qr = default_qr_for(till, sale)
    assert print_sale_receipt(till, sale, printer, qr).ok
    from escpos.capabilities import get_profile

    pages = {int(n): name for name, n in get_profile("POS-5890").get_code_pages().items()}
    codecs = {n: name.lower() for n, name in pages.items()}
    doc = reader.read(paper.path.read_bytes(), {n: c for n, c in codecs.items() if _codec(c)})
    assert not doc.qr_codes
    (raster,) = doc.rasters
    assert raster.width_dots <= 384  # POS-5890's head, whatever the configured roll
    found = read_qr(reader.raster_to_image(raster))
    assert [(f.text, f.ec_level) for f in found] == [(qr, "M")]
    assert_fits(doc, 58)


def _codec(name: str) -> bool:
    import codecs

    try:
        codecs.lookup(name)
        return True
    except LookupError:
        return False


def test_shift_close_prints_the_z_report_from_the_cli(shop):
    till, printer, paper = shop
    big_sale(till)
    root = str(till.data_dir.root)
    code, out, err = run("shift", "close", "--data-dir", root, "--json")
    assert code == 0, err
    result = json.loads(out)
    # every shift-close hook reports: hw printed the Z report; update had nothing to restart into
    assert {p["hook"]: p["printed"] for p in result["printing"]} == {"hw": True, "update": False}
    doc = paper.take()
    assert_fits(doc, paper.mm)
    assert format_minor(result["z_report"]["takings_minor"], till.profile().currency) in (
        amounts_on(doc)
    )
    assert "Z REPORT 1" in " ".join(doc.texts)


def test_a_z_report_print_failure_never_fails_the_close_and_is_queued(shop):
    from appliance.services.printing import z_reprint_queue

    till, printer, paper = shop
    big_sale(till)
    root = str(till.data_dir.root)
    config = till.data_dir.load_config()
    config.update("hardware", printer="tcp://127.0.0.1:9")
    till.data_dir.save_config(config)
    code, out, err = run("shift", "close", "--data-dir", root)
    assert code == 0, err
    assert "Z report not printed" in out and err == ""
    assert till.current_shift() is None  # the close stands
    assert z_reprint_queue(till) == [1]
    config.update("hardware", printer=paper.url)
    till.data_dir.save_config(config)
    code, out, err = run("hw", "reprint", "--data-dir", root, "--json")
    assert code == 0, err
    assert json.loads(out)["z_reports_printed"] == [1]
    assert "Z REPORT 1" in " ".join(paper.take().texts)
    assert z_reprint_queue(till) == []


def test_shift_close_no_print_and_print_z_refusals(shop):
    till, printer, paper = shop
    root = str(till.data_dir.root)
    code, out, err = run("shift", "close", "--data-dir", root, "--no-print", "--json")
    assert code == 0 and json.loads(out)["printing"] == []
    assert paper.path.read_bytes() == b""
    code, out, err = run("hw", "print-z", "--data-dir", root, "--shift", "7")
    assert code == 1 and err.count("\n") == 1 and "shift 7 is not closed" in err
    code, out, err = run("hw", "print-z", "--data-dir", root, "--shift", "x")
    assert code == 2 and err.count("\n") == 1 and "must be a shift number" in err
    assert paper.path.read_bytes() == b""
    assert [e for e in till.log.events(0) if e.type.startswith("z_report.")] == []
    code, out, err = run("hw", "print-z", "--data-dir", root, "--shift", "1")
    assert code == 0, err
    assert "Z REPORT 1" in " ".join(paper.take().texts)


def test_shift_close_on_a_till_without_a_printer_says_so_and_queues_nothing(shop):
    from appliance.services.printing import z_reprint_queue

    till, printer, paper = shop
    config = till.data_dir.load_config()
    config.update("hardware", printer="none://")
    till.data_dir.save_config(config)
    code, out, err = run("shift", "close", "--data-dir", str(till.data_dir.root))
    assert code == 0 and err == "" and "no receipt printer fitted" in out
    assert till.current_shift() is None and z_reprint_queue(till) == []


@pytest.mark.parametrize("paper_dots", [384, 576])
def test_worst_case_tb2_qr_raster_fits_the_paper_and_decodes(paper_dots):
    """The largest payload the signer may produce, through the raster path of a printer
    without native QR: never wider than the head, and still readable."""
    from nacl.signing import SigningKey

    from appliance.formats import receipt as rs
    from drivers.layout import _qr_image, qr_module_dots

    key = SigningKey(bytes(range(32)))
    fields = worst_case_tb2_fields(rs.key_id(key.verify_key))
    payload = rs.sign_fields(fields, key)
    assert len(payload) > 340  # really the worst case, not a short one
    module = qr_module_dots(paper_dots)
    assert module >= 5
    img = _qr_image(payload, module, paper_dots)
    assert img.width <= paper_dots
    found = read_qr(img.convert("L"))
    assert [r.text for r in found] == [payload]
