"""A stall with two tills, events and bookings, on the real kiosk under Xvfb.

Till a1 sells elsewhere (in-process, through the core); the kiosk runs till b1 of the
same tenant and stall, with the region's roster, event schedule and bookings signed by
a real region key and applied as a USB file would be. The camera is the simulator
looking at a QR picture the test writes; the taps are X events; every verdict is read
from the log through the core. One kiosk serves the module, in order: a refund of
a1's receipt, the event bar and its question, the bookings, the stall's stock.
"""

from __future__ import annotations

import time

import pytest

from appliance import events as ev
from appliance import stallstock
from appliance.formats import receipt as receipt_sig
from appliance.formats import region as fmt
from appliance.pricing import CartLine
from appliance.testing import confirm_clock
from appliance.till import Till
from systest.multitill import deliver, make_tills, roster_of, schedule_of, scheduled
from ui.testing import Kiosk, configure_kiosk, events, show_qr

pytestmark = pytest.mark.slow

H = 3600 * 1000
NOW = int(time.time() * 1000)
# Two events on at once (and the kiosk's clock is not confirmed by a time source here):
# either way the till must ask the cashier.
FAIR = scheduled("fair-1", NOW - H, NOW + 8 * H, name="Winter Fair", address="Quay Street 1")
TALK = scheduled("talk-1", NOW - H // 2, NOW + 2 * H, name="Makers' Talk", address="Hall B")
BOOKED = [
    {
        "id": "bk-paid",
        "number": 7,
        "name": "Ada Lovelace",
        "payment": "paid_online",
        "items": [
            {"sku": "BOARD-ENG", "qty": 1, "engraving": "ADA & MAX"},
            {"sku": "HONEY", "qty": 2},
        ],
        "stall": "s1",
    },
    {
        "id": "bk-pickup",
        "number": 8,
        "name": "Charles Babbage",
        "payment": "pay_at_pickup",
        "items": [{"sku": "MUG-01", "qty": 1}],
        "stall": "",
    },
]


@pytest.fixture(scope="module")
def stall(xvfb, tmp_path_factory, region):
    root = tmp_path_factory.mktemp("stall")
    a, b = make_tills(root, region, ("a1", "b1"))
    roster = roster_of([a, b])
    for folder in (a, b):
        deliver(folder, region, roster, 1)
        deliver(folder, region, schedule_of(FAIR, TALK), 1)
        deliver(folder, region, fmt.Bookings.from_json({"bookings": BOOKED}), 1)
    scene = root / "camera-scene.png"
    configure_kiosk(b, fatal=["log", "device_key", "disk"], camera=scene)
    k = Kiosk(xvfb, b, "800x480")
    k.scene = scene
    k.other = a
    k.region = region
    k.to_sell()
    yield k
    k.stop()


def test_a_receipt_of_the_stalls_other_till_is_refunded_here(stall):
    k = stall
    with Till.open(k.other) as till_a:  # the customer bought at a1 (asked: no event)
        till_a.choose_event("")
        sale = till_a.sell([CartLine("MUG-01", 2), CartLine("HONEY", 1)], "cash")
        qr = receipt_sig.receipt_qr_payload(till_a, sale.event)
    no = sale.payload["receipt_no"]
    k.tap("nav-refund")
    k.wait_screen("refund")
    show_qr(k.scene, qr)
    k.tap("refund-scan")
    k.wait_text("refund-sale", f"Sold at till a1, receipt {no}")
    left = k.wait_text("refund-left", "Still refundable here")
    assert "€24.00 at 20 % (of €24.00)" in left and "€6.50 at 5.5 % (of €6.50)" in left
    k.tap("rinc-1")  # this till's catalog, first item at the receipt's rates: the mug
    k.tap("refund-do")
    message = k.wait_text("refund-message", "Refund recorded")
    assert f"sold at till a1, receipt {no}" in message and "give back €12.00 (cash)" in message
    k.wait_text("refund-left", "€12.00 at 20 % (of €24.00)")
    k.screenshot("refund-other-till")
    k.tap("refund-rest")
    k.wait_text("refund-message", "give back €18.50")
    k.wait_text("refund-left", "€0.00 at 20 %")
    k.tap("refund-rest")
    k.wait_text("refund-message", "nothing left to refund at this till")

    refunds = [e.payload for e in events(k.ddir, ev.REFUND_ISSUED)]
    assert [(r["sale_device"], r["sale_receipt_no"], r["sale_id"]) for r in refunds] == [
        ("a1", no, ""),
        ("a1", no, ""),
    ]
    assert [(ln["sku"], ln["qty"]) for ln in refunds[0]["lines"]] == [("MUG-01", 1)]
    assert refunds[1]["lines"] == [] and refunds[1]["total_minor"] == 1850
    assert sum(r["total_minor"] for r in refunds) == sale.payload["total_minor"]
    with Till.open(k.ddir) as till_b:
        assert till_b.stock()["MUG-01"] == 41  # the mug came back into this till's stock


def test_the_status_bar_names_the_event_and_a_sale_waits_for_the_cashiers_choice(stall):
    k = stall
    k.wait_text("st-event", "Choose event")
    assert not k.widget("st-event").get("disabled")
    k.tap("nav-sell")
    k.wait_screen("sell")
    k.tap("item-MUG-01")
    k.wait_text("total", "12.00")
    k.tap("pay")
    k.wait_screen("pay")
    assert "pay-choose-event" not in k.state()["widgets"]  # asked only once refused
    before = len(events(k.ddir, ev.SALE_COMPLETED))
    k.tap("confirm")
    message = k.wait_text("pay-message", "which event is this sale at?")
    assert message.startswith("Not recorded: ") and "\n" not in message
    assert "fair-1" in message and "talk-1" in message  # the core's offer, as it words it
    k.screenshot("pay-choose-event")
    assert len(events(k.ddir, ev.SALE_COMPLETED)) == before  # nothing recorded

    k.tap("pay-choose-event")
    k.wait(lambda s: "ev-fair-1" in s["widgets"], what="the event chooser")
    offered = {n for n in k.state()["widgets"] if n.startswith("ev-")}
    assert {"ev-fair-1", "ev-talk-1", "ev-none", "ev-cancel"} <= offered
    assert "Winter Fair" in k.text("ev-fair-1") and "Quay Street 1" in k.text("ev-fair-1")
    k.screenshot("event-chooser")
    k.tap("ev-fair-1")
    k.wait_text("st-event", "Winter Fair")
    k.wait(lambda s: not s.get("popup"), what="the chooser to close")
    assert k.text("pay-message") == ""
    k.tap("confirm")
    k.wait_screen("receipt")
    sold = events(k.ddir, ev.SALE_COMPLETED)
    assert len(sold) == before + 1 and sold[-1].payload["event_id"] == "fair-1"
    chosen = events(k.ddir, ev.EVENT_CHOSEN)[-1].payload
    assert chosen["event_id"] == "fair-1"
    assert chosen["question"]["reason"] in ("clock_unconfirmed", "overlap")
    started = events(k.ddir, ev.EVENT_STARTED)[-1].payload
    assert (started["event_id"], started["how"]) == ("fair-1", "chosen")

    # A wrong tap can be undone: the chooser offers the same question's events again.
    k.tap("st-event")
    k.wait(lambda s: "ev-talk-1" in s["widgets"], what="the chooser again")
    k.tap("ev-cancel")
    k.wait(lambda s: not s.get("popup"), what="the chooser to close")

    # The region's next schedule has one event on now, and a time source confirms the
    # clock: the clock names the event, nothing is asked, the bar shows it.
    market = scheduled("market-2", NOW - H, NOW + 8 * H, name="Harbour Market")
    deliver(k.ddir, k.region, schedule_of(market), 2)
    with Till.open(k.ddir) as till:
        confirm_clock(till)
        assert till.current_event().event_id == "market-2"
    k.wait_text("st-event", "Harbour Market", timeout=15)  # the next status poll
    k.tap("st-event")
    k.wait_text("ev-title", "The clock says this is the event")
    assert "ev-none" not in k.state()["widgets"]  # nothing to choose
    k.screenshot("event-by-clock")
    k.tap("ev-cancel")
    k.wait(lambda s: not s.get("popup"), what="the pop-up to close")


def test_bookings_are_listed_scanned_handed_over_once_and_paid_at_pickup(stall):
    k = stall
    k.wait(lambda s: "nav-bookings" in s["widgets"], what="the Bookings button")
    k.tap("nav-bookings")
    k.wait_screen("bookings")
    paid_row = k.wait_text("bk-row-7", "Ada Lovelace")
    assert "paid online" in paid_row and '1 x Engraved oak board "ADA & MAX"' in paid_row
    assert "2 x Wildflower honey 250 g" in paid_row
    assert "pay at pickup" in k.wait_text("bk-row-8", "Charles Babbage")
    k.screenshot("bookings")

    # the customer's code from the booking e-mail, shown to the camera
    before_sales = len(events(k.ddir, ev.SALE_COMPLETED))
    show_qr(k.scene, fmt.booking_qr(k.region.key, "demo", "bk-paid", 7))
    k.tap("bk-scan")
    k.wait_text("bk-detail", "Booking 7")
    k.wait_text("bk-message", "nothing to charge")
    k.tap("bk-redeem")
    message = k.wait_text("bk-message", "paid online — nothing to charge")
    assert 'Engraving queued: "ADA & MAX"' in message
    k.wait_text("bk-row-7", "handed over")
    k.screenshot("booking-paid-handed-over")
    redeemed = [e.payload for e in events(k.ddir, ev.BOOKING_REDEEMED)]
    assert [(r["booking_id"], r["due_minor"], r["via"], r["sale_id"]) for r in redeemed] == [
        ("bk-paid", 0, "qr", "")
    ]
    assert len(events(k.ddir, ev.SALE_COMPLETED)) == before_sales  # never charged

    # handing it over again on this till: the core refuses, in its words
    k.tap("bk-redeem")
    again = k.wait_text("bk-message", "already handed over at this till")
    assert again.startswith("Not handed over: booking 7") and "\n" not in again
    assert len(events(k.ddir, ev.BOOKING_REDEEMED)) == 1

    # the personalised board goes to the engraver with its text
    k.tap("bk-engrave")
    k.wait_screen("engrave")
    k.wait_text("engrave-title", "ADA & MAX")
    k.tap("engrave-start")
    k.wait(lambda s: s.get("engraving", {}).get("state") == "completed", 90, "the engraving")
    started = events(k.ddir, ev.ENGRAVING_STARTED)[-1].payload
    assert (started["booking_id"], started["text"], started["receipt_no"]) == (
        "bk-paid",
        "ADA & MAX",
        0,
    )

    # found by name, paid at pickup: the pay screen takes the money, the sale hands it over
    k.tap("nav-bookings")
    k.wait_screen("bookings")
    k.tap("bk-name")
    k.type_keys("BABBAGE")
    k.tap("textpad-ok")
    k.wait_text("bk-detail", "Booking 8")
    k.tap("bk-redeem")
    k.wait_screen("pay")
    k.wait_text("pay-for", "Booking 8 · Charles Babbage · pay at pickup")
    k.wait_text("due", "12.00")
    k.screenshot("booking-pickup-pay")
    k.tap("confirm")
    k.wait_screen("receipt")
    sale = events(k.ddir, ev.SALE_COMPLETED)[-1].payload
    assert sale["booking_id"] == "bk-pickup" and sale["event_id"] == "market-2"
    assert [(ln["sku"], ln["qty"]) for ln in sale["lines"]] == [("MUG-01", 1)]
    pickup = events(k.ddir, ev.BOOKING_REDEEMED)[-1].payload
    assert (pickup["booking_id"], pickup["via"], pickup["due_minor"]) == ("bk-pickup", "name", 1200)
    assert pickup["receipt_no"] == sale["receipt_no"]

    # again at pickup: the pay screen shows the core's refusal; nothing is charged
    k.tap("nav-bookings")
    k.wait_screen("bookings")
    k.tap("bk-open-8")
    k.wait_text("bk-detail", "Already handed over at this till")
    k.tap("bk-redeem")
    k.wait_screen("pay")
    k.tap("confirm")
    k.wait_text("pay-message", "booking 8 was already handed over at this till")
    k.tap("pay-back")
    k.wait_screen("bookings")
    assert len(events(k.ddir, ev.BOOKING_REDEEMED)) == 2
    assert events(k.ddir, ev.SALE_COMPLETED)[-1].payload["booking_id"] == "bk-pickup"
    with Till.open(k.ddir) as till:
        assert till.verify().ok


def test_the_sell_screen_shows_the_stalls_stock_as_of_the_last_sync(stall):
    k = stall
    k.tap("nav-sell")
    k.wait_screen("sell")
    with Till.open(k.ddir) as till:
        own = till.stock()["MUG-01"]
    k.wait_text("item-MUG-01", f"{own} here · not synced", timeout=15)

    # The region's snapshot of the stall, built 12 minutes ago: a1 took 5 mugs off the
    # shelf (and b1's own movements, which the till counts itself, are left out).
    def snapshot(a1_mugs: int, version: int) -> bytes:
        moves = fmt.StallStock(
            "s1",
            (
                fmt.DeviceMoves("a1", 40, (("MUG-01", -a1_mugs),)),
                fmt.DeviceMoves("b1", 9, (("MUG-01", -1000),)),
            ),
        )
        issued = int(time.time() * 1000) - 12 * 60_000
        return fmt.seal_stock(k.region.key, "demo", moves, version, issued)

    with Till.open(k.ddir) as till:
        assert stallstock.keep(till, snapshot(5, 1)) == "kept"
    k.wait_text("item-MUG-01", f"≤{own - 5} left · 12 min ago", timeout=15)
    assert "left" not in k.text("item-CAFE")  # a coffee's stock is not tracked
    k.screenshot("sell-stall-stock")
    with Till.open(k.ddir) as till:
        assert stallstock.keep(till, snapshot(own + 2, 2)) == "kept"
    k.wait_text("item-MUG-01", "oversold by 2 · 12 min ago", timeout=15)
    k.tap("item-MUG-01")  # overselling is shown, never refused
    k.wait_text("total", "12.00")
    k.tap("clear-cart")


def test_a_handheld_scanner_finds_a_booking_and_typing_in_a_popup_is_not_a_scan(stall):
    k = stall
    k.tap("nav-bookings")
    k.wait_screen("bookings")
    before = k.text("bk-message")
    k.tap("bk-name")  # keys typed into the name search's keyboard belong to it
    k.wait(lambda s: s.get("popup"), what="the name search")
    k.type_text("TBB1 not a scan\n")
    k.tap("textpad-cancel")
    k.wait(lambda s: not s.get("popup"), what="the name search to close")
    time.sleep(0.5)  # what a scan would have said by now
    assert k.text("bk-message") == before  # no scan was tried

    # the scanner types the customer's code and Enter, as X key events
    k.type_text(fmt.booking_qr(k.region.key, "demo", "bk-pickup", 8) + "\n")
    k.wait_text("bk-detail", "Booking 8")
    # a code signed by another key is refused in the core's words; nothing is chosen
    from nacl.signing import SigningKey

    k.type_text(fmt.booking_qr(SigningKey.generate(), "demo", "bk-paid", 7) + "\n")
    refused = k.wait_text("bk-message", "region", timeout=15)
    assert "\n" not in refused and "Booking 7" not in k.text("bk-detail")
