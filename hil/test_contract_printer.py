"""Receipt printer contract: what tillbox relies on from any printer it is given."""

from __future__ import annotations

import pytest

from appliance.pricing import CartLine
from appliance.services.printing import print_sale_receipt

pytestmark = pytest.mark.hil


def test_printer_answers_status_and_has_paper(printer):
    status = printer.status()
    assert status.answered, "the printer must answer DLE EOT status queries"
    assert status.online is True and status.paper in ("ok", "near_end")
    assert status.cover_open is False
    assert printer.state().ok


def test_prints_a_receipt_with_accented_names_and_records_it(printer, till):
    sale = till.sell([CartLine("POSTCARD", 1), CartLine("BRATW", 1)], "cash").event
    outcome = print_sale_receipt(till, sale, printer, qr_payload="TILLBOX-HIL-TEST")
    assert outcome.ok and outcome.confirmed, outcome.message
    assert till.reprint_queue() == []
    if printer.simulator is not None:  # on a real rig a person checks the paper
        text = printer.simulator.rendered_text()
        assert "Łódź" in text and "Brötchen" in text and "[QR TILLBOX-HIL-TEST]" in text


def test_status_still_answers_after_a_long_job(printer):
    doc = printer.new_document()
    for i in range(60):
        doc.textln(f"line {i:02d} " + "=" * 20)
    doc.cut()
    printer.send(doc.output)
    assert printer.status().answered
