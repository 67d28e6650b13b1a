"""The cashier's flows on the real kiosk under Xvfb, tapped with X input events.

One kiosk (800x480) serves the whole module, in order, as one trading day would:
self-test blocked -> technician override -> cash sale -> card refused -> refund ->
personalised order -> inspection -> settings -> shift close. Each test checks the log
through the core. Screenshots of every screen land in docs/screenshots/.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import datetime, timedelta

import pytest

from appliance import sync_state
from appliance.errors import RuleViolation
from appliance.till import Till
from ui.testing import PIN, Kiosk, events, make_till

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kiosk(xvfb, tmp_path_factory):
    root = tmp_path_factory.mktemp("flows") / "till"
    ddir = make_till(root)  # default fatal checks: the demo till has no permit enrollment
    k = Kiosk(xvfb, ddir, "800x480")
    yield k
    k.stop()


def sales(kiosk: Kiosk) -> list:
    return events(kiosk.ddir, "sale.completed")


def test_selftest_blocks_selling_until_a_technician_overrides(kiosk):
    text = kiosk.wait_text("verdict", "Selling is blocked", timeout=20)
    assert "permits failed (no enrollment recorded); fix: enroll the till" in text
    with Till.open(kiosk.ddir) as till:  # the rule is the core's: every front end refuses
        assert [c.name for c in till.selftest_gate().failed] == ["permits"]
    # No sync agent runs here: the bar counts what waits from the log and says why.
    waiting = len(events(kiosk.ddir))
    bar = kiosk.wait_text("st-sync", f"Offline · {waiting} waiting to sync")
    assert "sync agent never ran here" in bar
    # An agent that stopped writing its state file 10 minutes ago is named on the bar too.
    stopped = datetime.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    sync_state.write(
        kiosk.ddir.sync_dir,
        sync_state.SyncState(updated_wall_ms=int(stopped.timestamp() * 1000), running=True),
    )
    today = stopped.date() == datetime.now().date()
    stamp = stopped.strftime("%H:%M" if today else "%Y-%m-%d %H:%M")
    kiosk.wait_text("st-sync", f"sync agent not running since {stamp}")
    (kiosk.ddir.sync_dir / sync_state.STATE_FILE).unlink()
    kiosk.wait_text("st-sync", "sync agent never ran here")
    assert kiosk.widget("start-selling")["disabled"]
    kiosk.screenshot("selftest-blocked")

    kiosk.tap("override")
    kiosk.keypad("1111", "pin-")
    kiosk.screenshot("technician-pin")
    kiosk.tap("pin-ok")
    kiosk.wait_text("pin-message", "wrong technician PIN")
    kiosk.tap("pin-C")
    kiosk.keypad(PIN, "pin-")
    kiosk.tap("pin-ok")
    kiosk.wait_text("verdict", "override recorded")
    kiosk.tap("start-selling")
    kiosk.wait_screen("sell")

    recorded = events(kiosk.ddir, "selftest.recorded")
    assert recorded[-1].payload["verdict"] == "fail"
    assert recorded[-1].payload["trigger"] == "kiosk"
    overrides = events(kiosk.ddir, "selftest.override")
    assert len(overrides) == 1  # the wrong PIN recorded nothing
    assert overrides[0].payload["failed"] == ["permits"]


def test_cash_sale_with_promo_double_tap_records_one_sale(kiosk):
    kiosk.tap("sell-open-shift")
    kiosk.wait_text("pin-shown", "0.00")  # the counted opening float, as money
    kiosk.keypad("999999999", "pin-")
    kiosk.tap("pin-ok")
    refused = kiosk.wait_text("pin-message", "opening float")
    assert "count the drawer and give it again" in refused and "\n" not in refused
    assert events(kiosk.ddir, "shift.opened") == []  # nothing written
    kiosk.tap("pin-C")
    kiosk.keypad("15000", "pin-")
    kiosk.wait_text("pin-shown", "150.00")
    kiosk.screenshot("shift-open-float")
    kiosk.tap("pin-ok")
    kiosk.wait(lambda s: "sell-open-shift" not in s["widgets"], what="the shift to open")
    opened = events(kiosk.ddir, "shift.opened")
    assert [e.payload["opening_float_minor"] for e in opened] == [15000]
    kiosk.tap("item-MUG-01")
    kiosk.wait_text("total", "12.00")
    kiosk.tap("item-MUG-01")
    kiosk.tap("item-HONEY")
    kiosk.wait_text("total", "30.50")
    kiosk.tap("promo")
    kiosk.type_keys("MARKET10")
    kiosk.screenshot("promo-code")
    kiosk.tap("textpad-ok")
    kiosk.wait_text("total", "27.45")  # 10 % off, computed by the core
    kiosk.screenshot("sell")
    kiosk.tap("pay")
    kiosk.wait_screen("pay")
    # Quick tender: exact, then the next euro notes above 27.45 (from the core's table)
    quick = sorted(
        n.removeprefix("tender-") for n in kiosk.state()["widgets"] if n.startswith("tender-")
    )
    assert quick == ["10000", "20000", "5000", "exact"]
    kiosk.tap("tender-5000")
    kiosk.wait_text("change", "22.55")
    kiosk.wait_text("tendered", "50.00")
    kiosk.screenshot("pay-cash")
    kiosk.tap("confirm", times=2)  # a cold, hurried double tap
    kiosk.wait_screen("receipt")
    kiosk.wait_text("print-status", "printed")
    kiosk.wait_text("preview", "TOTAL")
    kiosk.wait(lambda s: not s["widgets"]["new-sale"]["disabled"], what="buttons awake")
    kiosk.screenshot("receipt")

    recorded = sales(kiosk)
    assert len(recorded) == 1
    p = recorded[0].payload
    assert [(ln["sku"], ln["qty"]) for ln in p["lines"]] == [("MUG-01", 2), ("HONEY", 1)]
    assert [promo["id"] for promo in p["promotions"]] == ["MARKET10"]
    assert p["payment"]["tendered_minor"] == 5000
    assert p["payment"]["change_minor"] == 5000 - p["payment"]["due_minor"]
    with Till.open(kiosk.ddir) as till:  # the screen's total is the core's total
        from appliance.pricing import CartLine

        quote = till.quote([CartLine("MUG-01", 2), CartLine("HONEY", 1)], "MARKET10")
        assert p["total_minor"] == quote.total_minor
    printed = events(kiosk.ddir, "receipt.printed")
    assert [e.payload["receipt_no"] for e in printed] == [p["receipt_no"]]
    assert printed[0].seq > recorded[0].seq  # printed only after the sale was durable
    drawer = events(kiosk.ddir, "drawer.opened")
    assert drawer and drawer[-1].payload["receipt_no"] == p["receipt_no"]


def test_card_over_the_offline_limit_is_refused_with_the_reason(kiosk):
    kiosk.tap("new-sale")
    kiosk.wait_screen("sell")
    for _ in range(6):  # 6 x 20.00 is above the 100.00 per-sale offline card limit
        kiosk.tap("item-TEE-M")
    kiosk.wait_text("total", "120.00")
    kiosk.tap("pay")
    kiosk.wait_screen("pay")
    kiosk.tap("method-card")
    message = kiosk.wait_text("pay-message", "Card refused")
    assert "offline card limit" in message
    kiosk.tap("confirm")
    kiosk.wait_text("pay-message", "above the offline card limit")
    kiosk.screenshot("pay-card-refused")
    assert kiosk.state()["screen"] == "pay"
    assert len(sales(kiosk)) == 1  # nothing recorded
    kiosk.tap("pay-back")
    kiosk.wait_screen("sell")
    kiosk.tap("clear-cart")
    kiosk.wait(lambda s: "del-0" not in s["widgets"], what="an empty cart")


def test_refund_part_of_a_sale_and_the_core_refuses_more(kiosk):
    receipt = sales(kiosk)[0].payload["receipt_no"]
    kiosk.tap("nav-refund")
    kiosk.wait_screen("refund")
    kiosk.keypad(str(receipt))
    kiosk.tap("refund-find")
    kiosk.wait_text("refund-sale", f"Receipt {receipt}")
    kiosk.tap("rinc-1")
    kiosk.tap("refund-do")
    kiosk.wait_text("refund-message", "Refund recorded")
    kiosk.screenshot("refund")
    kiosk.tap("rinc-1", times=2)  # both mugs: one was already refunded
    kiosk.tap("refund-do")
    message = kiosk.wait_text("refund-message", "Refund refused")
    assert "only 1 of 2 sold are left" in message
    # a handheld QR scanner (keyboard mode) types the receipt's QR text and Enter
    from appliance.formats import receipt as receipt_sig

    kiosk.tap("key-C")
    with Till.open(kiosk.ddir) as till:
        payload = receipt_sig.receipt_qr_payload(till, sales(kiosk)[0])
    kiosk.type_text(payload + "\n")
    kiosk.wait_text("refund-number", f"Receipt no. {receipt}")
    kiosk.wait_text("refund-message", "Choose what to refund")
    kiosk.type_text(payload.replace("*ui-test*", "*elsewhere*") + "\n")
    kiosk.wait_text("refund-message", "from till elsewhere")

    refunds = events(kiosk.ddir, "refund.issued")
    assert len(refunds) == 1
    r = refunds[0].payload
    assert [(ln["sku"], ln["qty"]) for ln in r["lines"]] == [("MUG-01", 1)]
    sold = sales(kiosk)[0].payload["lines"][0]
    assert r["lines"][0]["gross_minor"] * 2 in (
        sold["gross_minor"],
        sold["gross_minor"] + 1,
        sold["gross_minor"] - 1,
    )


def test_personalised_order_proof_signature_and_engraving(kiosk):
    kiosk.tap("nav-personalise")
    kiosk.wait_screen("pers_pick")
    kiosk.screenshot("personalise-pick")
    kiosk.tap("pers-KEYRING-ENG")
    kiosk.wait_screen("pers_text")
    kiosk.type_keys("ANNA 2026")
    kiosk.wait_text("engrave-text", "ANNA 2026")
    kiosk.screenshot("personalise-text")
    kiosk.tap("show-proof")
    kiosk.wait_screen("pers_proof")
    kiosk.wait_text("proof-facts", "mm")
    kiosk.screenshot("personalise-proof")
    kiosk.tap("proof-ok")
    kiosk.wait_screen("pers_sign")
    kiosk.tap("sign-accept")  # no signature yet: refused
    kiosk.wait_text("sign-message", "sign with a finger")
    kiosk.drag(
        "signature",
        [
            (0.15, 0.7),
            (0.25, 0.4),
            (0.35, 0.65),
            (0.45, 0.35),
            (0.55, 0.6),
            (0.7, 0.45),
            (0.85, 0.55),
        ],
    )
    kiosk.screenshot("personalise-signature")
    kiosk.tap("sign-accept")
    kiosk.wait_screen("sell")
    kiosk.wait_text("total", "9.00")
    kiosk.tap("pay")
    kiosk.wait_screen("pay")
    kiosk.keypad("2")  # a wrong start; the exact-amount button replaces it
    kiosk.tap("tender-exact")
    kiosk.wait_text("tendered", "9.00")
    kiosk.wait_text("change", "0.00")
    kiosk.tap("confirm")
    kiosk.wait_screen("receipt")
    kiosk.wait_text("print-status", "printed")
    kiosk.tap("engrave")
    kiosk.wait_screen("engrave")
    kiosk.screenshot("engrave-ready")
    kiosk.tap("engrave-start")
    kiosk.wait(
        lambda s: s.get("engraving", {}).get("state") in ("streaming", "finishing"),
        15,
        "the job to stream",
    )
    kiosk.tap("engrave-hold")
    kiosk.wait(lambda s: s.get("engraving", {}).get("state") == "held", 10, "the job to hold")
    kiosk.screenshot("engrave-held")
    kiosk.tap("engrave-hold")  # resume
    kiosk.wait(
        lambda s: s.get("engraving", {}).get("state") == "completed", 60, "the job to complete"
    )
    kiosk.screenshot("engrave-done")

    sale = sales(kiosk)[-1]
    assert sale.payload["payment"]["tendered_minor"] == sale.payload["payment"]["due_minor"]
    line = sale.payload["lines"][0]
    assert line["sku"] == "KEYRING-ENG" and line["refundable"] is False
    pers = line["personalisation"]
    assert pers["text"] == "ANNA 2026"
    sig = pers["signature"]
    stored = [e for e in events(kiosk.ddir, "personal.recorded") if e.seq == sig["seq"]]
    assert stored and stored[0].payload["customer"] == sig["customer"]
    assert stored[0].payload["purpose"] == "signature"
    assert stored[0].seq < sale.seq  # approved before it was sold
    from appliance.privacy import read_personal

    with Till.open(kiosk.ddir) as till:
        data = read_personal(kiosk.ddir, till.log, sig["customer"])
        strokes = data[0]["data"]["strokes"] if "data" in data[0] else data[0]["strokes"]
        assert len(strokes) == 1 and len(strokes[0]) >= 5
        # the documented digest, recomputed here: SHA-256 of the strokes' compact JSON
        compact = json.dumps(strokes, separators=(",", ":")).encode("ascii")
        assert hashlib.sha256(compact).hexdigest() == sig["sha256"]
        with pytest.raises(RuleViolation, match="personalised"):
            till.refund(sale.payload["receipt_no"], [("KEYRING-ENG", 1)])
    kinds = [e.type for e in events(kiosk.ddir) if e.type.startswith("engraving.")]
    assert kinds == ["engraving.started", "engraving.completed"]
    done = events(kiosk.ddir, "engraving.completed")[0].payload
    assert done["sale_id"] == sale.payload["sale_id"] and done["outcome"] == "completed"
    assert done["lines_acked"] == done["total"] > 10


def test_inspection_mode_shows_the_day_and_exports_to_usb(kiosk):
    kiosk.tap("nav-inspect")
    kiosk.wait_screen("inspect")
    kiosk.wait_text("insp-body", "sale.completed")
    kiosk.screenshot("inspect-log")
    kiosk.tap("insp-permits")
    kiosk.wait_text("insp-body", "DEMO-PERMIT-2026")
    kiosk.screenshot("inspect-permits")
    kiosk.tap("insp-selftests")
    kiosk.wait_text("insp-body", "OVERRIDE permits")
    kiosk.screenshot("inspect-selftests")
    kiosk.tap("insp-export")
    kiosk.wait_text("insp-message", "Bundle written", timeout=30)
    bundles = list((kiosk.ddir.root.parent / "usb").glob("tillbox-ui-test-*.zip"))
    assert len(bundles) == 1
    with zipfile.ZipFile(bundles[0]) as zf:
        assert zf.testzip() is None
        assert any("events" in name for name in zf.namelist())


def test_technician_settings_switch_language(kiosk):
    kiosk.tap("nav-settings")
    kiosk.keypad(PIN, "pin-")
    kiosk.tap("pin-ok")
    kiosk.wait_screen("settings")
    kiosk.wait_text("devices", "printer")
    kiosk.tap("lang-de")
    kiosk.wait_text("nav-sell", "Verkauf")
    kiosk.screenshot("settings-de")
    assert kiosk.ddir.load_config().section("ui")["lang"] == "de"
    kiosk.tap("nav-sell")
    kiosk.wait_screen("sell")
    kiosk.wait_text("pay", "Bezahlen")
    kiosk.screenshot("sell-de")
    kiosk.tap("nav-settings")
    kiosk.keypad(PIN, "pin-")
    kiosk.tap("pin-ok")
    kiosk.wait_screen("settings")
    kiosk.tap("lang-en")
    kiosk.wait_text("nav-sell", "Sell")
    kiosk.screenshot("settings")


def test_shift_close_shows_and_records_the_z_report(kiosk):
    kiosk.tap("nav-shift")
    kiosk.wait_screen("shift")
    kiosk.tap("shift-close")
    z_text = kiosk.wait_text("z-report", "Z report - shift 1")
    kiosk.wait_text("shift-message", "Z report printed")
    kiosk.screenshot("shift-z-report")
    closed = events(kiosk.ddir, "shift.closed")
    assert len(closed) == 1
    # printed through the drivers' Z report layout, which records it like a receipt
    printed = events(kiosk.ddir, "z_report.printed")
    assert [(e.payload["shift_no"], e.payload["reprint"]) for e in printed] == [(1, False)]
    z = closed[0].payload["z_report"]
    assert z["sales_count"] == 2 and z["refunds_count"] == 1
    paid = sum(e.payload["payment"]["due_minor"] for e in sales(kiosk))
    refunded = sum(e.payload["total_minor"] for e in events(kiosk.ddir, "refund.issued"))
    assert z["takings_minor"] == paid - refunded  # the core nets refunds out of takings
    assert sum(r["total_minor"] for r in z["refunds"]) == refunded
    assert "Takings" in z_text
    cash = sum(
        e.payload["payment"]["due_minor"]
        for e in sales(kiosk)
        if e.payload["payment"]["method"] == "cash"
    )
    cash_back = sum(
        e.payload["total_minor"]
        for e in events(kiosk.ddir, "refund.issued")
        if e.payload["payment"]["method"] == "cash"
    )
    assert z["opening_float_minor"] == 15000
    assert z["expected_cash_minor"] == 15000 + cash - cash_back
    assert f"{(15000 + cash - cash_back) / 100:.2f} in the drawer" in z_text
    with Till.open(kiosk.ddir) as till:
        assert till.current_shift() is None
    # selling now needs a new shift: the sell screen offers to open one
    kiosk.tap("nav-sell")
    kiosk.wait(lambda s: "sell-open-shift" in s["widgets"], what="the open-shift offer")
