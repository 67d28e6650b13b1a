"""Refund by showing the receipt's QR code to the camera, on the real kiosk under Xvfb.

The kiosk runs as a subprocess with ``camera = "sim://?scene=FILE"``: writing a QR image
to FILE is holding a receipt in front of the lens. The payloads come from the core
(``appliance.formats.receipt``), the QR images from the ``qrcode`` library, the taps are X
events, and the verdicts are read from the log through the core.
"""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from appliance.formats import receipt as receipt_sig
from appliance.till import Till
from ui.testing import Kiosk, events, make_till, show_qr

pytestmark = pytest.mark.slow


def last_seq(kiosk: Kiosk) -> int:
    return events(kiosk.ddir)[-1].seq


@pytest.fixture(scope="module")
def kiosk(xvfb, tmp_path_factory):
    root = tmp_path_factory.mktemp("scan") / "till"
    ddir = make_till(root, fatal=["log", "device_key", "disk"])
    scene = root.parent / "camera-scene.png"
    config = ddir.load_config()
    config.update("hardware", camera=f"sim://?scene={scene}")
    ddir.save_config(config)
    k = Kiosk(xvfb, ddir, "800x480")
    k.scene = scene
    yield k
    k.stop()


@pytest.fixture(scope="module")
def sale(kiosk):
    kiosk.to_sell()
    kiosk.open_shift()
    kiosk.tap("item-MUG-01")
    kiosk.tap("item-MUG-01")
    kiosk.tap("item-HONEY")
    kiosk.wait_text("total", "30.50")
    kiosk.tap("pay")
    kiosk.wait_screen("pay")
    kiosk.tap("confirm")
    kiosk.wait_screen("receipt")
    kiosk.wait_text("print-status", "printed")
    recorded = events(kiosk.ddir, "sale.completed")
    assert len(recorded) == 1
    kiosk.tap("nav-refund")
    kiosk.wait_screen("refund")
    return recorded[0]


def test_a_forged_receipt_shown_to_the_camera_is_refused_and_nothing_is_logged(kiosk, sale):
    with Till.open(kiosk.ddir) as till:
        genuine = receipt_sig.receipt_qr_payload(till, sale)
    fields, _sig, _signed = receipt_sig.parse_payload(genuine)
    forged = receipt_sig.sign_fields(fields, SigningKey(bytes(range(32))))  # another key
    assert forged != genuine and forged.startswith("TB2*") and "*ui-test*" in forged
    before = last_seq(kiosk)

    show_qr(kiosk.scene, None)
    kiosk.tap("refund-scan")
    kiosk.wait_text("refund-message", "no QR code in view")

    show_qr(kiosk.scene, forged)
    kiosk.tap("refund-scan")
    message = kiosk.wait_text("refund-message", "refused")
    assert f"receipt {fields.receipt_no} refused: its signature was not made by this till" in (
        message
    )
    assert kiosk.text("refund-sale") == ""  # no sale opened for refund
    assert "rinc-1" not in kiosk.state()["widgets"]
    kiosk.screenshot("refund-scan-forged")
    assert last_seq(kiosk) == before  # nothing was written to the log
    assert events(kiosk.ddir, "refund.issued") == []


def test_scan_the_receipt_qr_with_the_camera_and_refund_a_line(kiosk, sale):
    with Till.open(kiosk.ddir) as till:
        payload = receipt_sig.receipt_qr_payload(till, sale)
    receipt = sale.payload["receipt_no"]
    show_qr(kiosk.scene, payload)
    kiosk.tap("refund-scan")
    kiosk.wait_text("refund-sale", f"Receipt {receipt}")
    kiosk.wait_text("refund-message", "Choose what to refund")
    kiosk.wait_text("refund-number", f"Receipt no. {receipt}")
    kiosk.tap("rinc-1")
    kiosk.tap("refund-do")
    kiosk.wait_text("refund-message", "Refund recorded")
    kiosk.screenshot("refund-scan")

    refunds = events(kiosk.ddir, "refund.issued")
    assert len(refunds) == 1
    r = refunds[0].payload
    assert r["sale_receipt_no"] == receipt and r["sale_id"] == sale.payload["sale_id"]
    assert [(ln["sku"], ln["qty"]) for ln in r["lines"]] == [("MUG-01", 1)]
    with Till.open(kiosk.ddir) as till:  # the core agrees: one of two mugs is left
        rows = till.log.conn.execute(
            "SELECT sku, qty, refunded_qty FROM sale_lines WHERE receipt_no = ? ORDER BY line",
            (receipt,),
        ).fetchall()
        assert [tuple(row) for row in rows] == [("MUG-01", 2, 1), ("HONEY", 1, 0)]
        refund_qr = receipt_sig.receipt_qr_payload(till, refunds[0])

    # the refund's own receipt, shown to the camera, is not refunded again
    before = last_seq(kiosk)
    show_qr(kiosk.scene, refund_qr)
    kiosk.tap("refund-scan")
    kiosk.wait_text("refund-message", "cannot be refunded again")
    assert last_seq(kiosk) == before
    assert len(events(kiosk.ddir, "refund.issued")) == 1
