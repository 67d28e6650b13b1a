"""Every screen on the 10-inch display (1280x800), reached by taps, with screenshots.

The same flows as test_flows.py at the other supported size: a cash sale and a
personalised order through proof, signature and engraving, checked in the log.
"""

from __future__ import annotations

import pytest

from appliance.till import Till
from ui.testing import PIN, Kiosk, events, make_till

pytestmark = pytest.mark.slow


def test_every_screen_at_1280x800(xvfb, tmp_path):
    ddir = make_till(tmp_path / "till", fatal=["log", "device_key", "disk"], engraver_speed=4)
    k = Kiosk(xvfb, ddir, "1280x800")
    try:
        k.wait_text("verdict", "Ready to trade", timeout=20)
        k.screenshot("selftest")
        k.tap("start-selling")
        k.wait_screen("sell")
        k.open_shift()
        for sku in ("CAFE", "CAFE", "BRATW", "POSTCARD"):
            k.tap(f"item-{sku}")
        k.wait_text("total", "12.60")
        k.screenshot("sell")
        k.tap("promo")
        k.type_keys("FIVEOFF")
        k.screenshot("promo-code")
        k.tap("textpad-ok")
        k.wait_text("total", "7.60")
        k.tap("pay")
        k.wait_screen("pay")
        k.keypad("1000")
        k.wait_text("change", "2.40")
        k.screenshot("pay-cash")
        k.tap("method-card")
        k.wait_text("confirm", "Charge card")
        k.screenshot("pay-card")
        k.tap("method-cash")
        k.tap("key-C")
        k.keypad("1000")
        k.tap("confirm")
        k.wait_screen("receipt")
        k.wait_text("preview", "TOTAL")
        k.wait(lambda s: not s["widgets"]["new-sale"]["disabled"], what="buttons awake")
        k.screenshot("receipt")

        k.tap("nav-personalise")
        k.wait_screen("pers_pick")
        k.screenshot("personalise-pick")
        k.tap("pers-BOARD-ENG")
        k.type_keys("FOR SAM")
        k.wait_text("engrave-text", "FOR SAM")
        k.screenshot("personalise-text")
        k.tap("show-proof")
        k.wait_text("proof-facts", "mm")
        k.screenshot("personalise-proof")
        k.tap("proof-ok")
        k.wait_screen("pers_sign")
        k.drag("signature", [(0.1, 0.6), (0.3, 0.3), (0.5, 0.7), (0.7, 0.3), (0.9, 0.5)])
        k.screenshot("personalise-signature")
        k.tap("sign-accept")
        k.wait_screen("sell")
        k.tap("pay")
        k.wait_screen("pay")
        k.tap("confirm")
        k.wait_screen("receipt")
        k.tap("engrave")
        k.wait_screen("engrave")
        k.screenshot("engrave-ready")
        k.tap("engrave-start")
        k.wait(lambda s: s.get("engraving", {}).get("state") == "streaming", 20, "streaming")
        k.screenshot("engrave-running")
        k.tap("engrave-cancel")
        k.wait(lambda s: s.get("engraving", {}).get("state") == "cancelled", 20, "cancelled")
        k.wait_text("engrave-status", "stopped")
        k.screenshot("engrave-cancelled")
        k.tap("engrave-start")  # the blank is replaced; the same order runs again
        k.wait(lambda s: s.get("engraving", {}).get("state") == "completed", 60, "engraving")
        k.screenshot("engrave-done")

        k.tap("nav-refund")
        k.wait_screen("refund")
        k.keypad("1")
        k.tap("refund-find")
        k.wait_text("refund-sale", "Receipt 1")
        k.tap("rinc-1")
        k.screenshot("refund")
        k.tap("nav-shift")
        k.wait_screen("shift")
        k.wait_text("shift-state", "Shift 1 is open")
        k.screenshot("shift")
        k.tap("nav-inspect")
        k.wait_text("insp-body", "sale.completed")
        k.screenshot("inspect-log")
        k.tap("nav-settings")
        k.wait(lambda s: "pin-ok" in s["widgets"], what="the PIN pad")
        k.screenshot("technician-pin")
        k.keypad(PIN, "pin-")
        k.tap("pin-ok")
        k.wait_screen("settings")
        k.wait_text("devices", "printer")
        k.screenshot("settings")
    finally:
        k.stop()
    sold = events(ddir, "sale.completed")
    assert [ln["sku"] for ln in sold[0].payload["lines"]] == ["CAFE", "BRATW", "POSTCARD"]
    assert sold[0].payload["promotions"][0]["id"] == "FIVEOFF"
    assert sold[1].payload["lines"][0]["personalisation"]["text"] == "FOR SAM"
    engraving = [e for e in events(ddir) if e.type.startswith("engraving.")]
    assert [e.type for e in engraving] == [
        "engraving.started",
        "engraving.cancelled",
        "engraving.started",
        "engraving.completed",
    ]
    cancelled = engraving[1].payload
    assert cancelled["outcome"] == "cancelled" and cancelled["lines_acked"] < cancelled["total"]


def test_printer_out_of_paper_keeps_the_sale_and_queues_the_receipt(xvfb, tmp_path):
    ddir = make_till(tmp_path / "till", fatal=["log"])
    config = ddir.load_config()
    config.update("hardware", printer="sim://?paper=out")
    ddir.save_config(config)
    k = Kiosk(xvfb, ddir, "800x480")
    try:
        k.to_sell()
        k.open_shift()
        k.tap("item-JAM-FR")
        k.tap("pay")
        k.wait_screen("pay")
        k.tap("confirm")
        k.wait_screen("receipt")
        status = k.wait_text("print-status", "paper")
        assert "b01010" in status  # shown in red
        k.wait_text("reprint-queue", "Waiting to print: 1")
        k.wait_text("st-printer", "Printer !")
        k.wait(lambda s: not s["widgets"]["drain"]["disabled"], what="Print queued enabled")
        k.wait_text("preview", "TOTAL")  # the screen still shows what the receipt says
        k.screenshot("receipt-printer-out")
        k.tap("drain")
        k.wait_text("print-status", "paper")
    finally:
        k.stop()
    sale = events(ddir, "sale.completed")
    failed = events(ddir, "receipt.failed")
    assert len(sale) == 1 and len(failed) == 2  # the sale stands; both attempts are recorded
    assert all(e.seq > sale[0].seq for e in failed)
    with Till.open(ddir) as till:
        assert till.reprint_queue() == [sale[0].payload["receipt_no"]]


def test_a_job_the_engraver_refuses_is_logged_as_failed_never_as_started(xvfb, tmp_path):
    # The work area set past the simulator's 300 mm X travel: the driver refuses the job
    # before a byte is sent, so the log must not claim it started.
    ddir = make_till(tmp_path / "till", fatal=["log"])
    config = ddir.load_config()
    config.update("engraver", origin_x_mm=290.0)
    ddir.save_config(config)
    k = Kiosk(xvfb, ddir, "800x480")
    try:
        k.to_sell()
        k.open_shift()
        k.tap("nav-personalise")
        k.wait_screen("pers_pick")
        k.tap("pers-KEYRING-ENG")
        k.wait_screen("pers_text")
        k.type_keys("ANNA")
        k.wait_text("engrave-text", "ANNA")
        k.tap("show-proof")
        k.wait_screen("pers_proof")
        k.tap("proof-ok")
        k.wait_screen("pers_sign")
        k.drag("signature", [(0.1, 0.6), (0.3, 0.3), (0.5, 0.7), (0.7, 0.3), (0.9, 0.5)])
        k.tap("sign-accept")
        k.wait_screen("sell")
        k.tap("pay")
        k.wait_screen("pay")
        k.tap("confirm")
        k.wait_screen("receipt")
        k.tap("engrave")
        k.wait_screen("engrave")
        k.tap("engrave-start")
        k.wait(lambda s: s.get("engraving", {}).get("state") == "failed", 20, "the refusal")
        assert "travel" in k.wait_text("engrave-status", "travel")
    finally:
        k.stop()
    engraving = [e for e in events(ddir) if e.type.startswith("engraving.")]
    assert [e.type for e in engraving] == ["engraving.failed"]
    assert "travel" in engraving[0].payload["message"]
