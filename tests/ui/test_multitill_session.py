"""The kiosk's view model for several tills and events, without Kivy, on real tills.

Two demo tills of one tenant (a1 sells, b1 is the kiosk's), the region's lists signed
with a real region key and applied as a USB file would be (systest.multitill). The
rules are the core's; these check that the session asks the core and shows its words.
"""

from __future__ import annotations

import pytest

from appliance import events as ev
from appliance.errors import RuleViolation, TillError
from appliance.formats import receipt as receipt_sig
from appliance.pricing import CartLine
from appliance.till import Till
from systest.multitill import deliver, make_tills, roster_of, sell_at
from ui.session import ForeignReceipt, Session


@pytest.fixture
def tills(tmp_path, region):
    a, b, c = make_tills(tmp_path, region, ("a1", "b1", "c1"))
    roster = roster_of([a, b])  # c1 is not in the roster
    for folder in (a, b, c):
        deliver(folder, region, roster, 1)
    return a, b, c


def test_a_receipt_of_another_roster_till_opens_with_what_is_left_to_refund_here(tills):
    a, b, _c = tills
    sale, qr = sell_at(a, [CartLine("MUG-01", 2), CartLine("HONEY", 1)], "cash")
    with Till.open(b) as till:
        s = Session(till)
        found = s.find_refund(qr)
        assert isinstance(found, ForeignReceipt)
        assert (found.sale.device_id, found.sale.receipt_no) == ("a1", sale["receipt_no"])
        assert found.total_minor == sale["total_minor"] == 2 * 1200 + 650
        assert found.rates() == [(550, 650, 650), (2000, 2400, 2400)]
        offered = {item.sku: (gross, bp) for item, gross, bp in s.refund_prices(found)}
        assert offered["MUG-01"] == (1200, 2000) and offered["HONEY"] == (650, 550)
        result = s.refund_foreign(found, [("MUG-01", 1)])
        p = result.event.payload
        assert (p["sale_device"], p["sale_receipt_no"], p["total_minor"]) == (
            "a1",
            sale["receipt_no"],
            1200,
        )
        again = s.find_refund(qr)  # the core's count of what this till gave back
        assert isinstance(again, ForeignReceipt)
        assert again.rates() == [(550, 650, 650), (2000, 2400, 1200)]
        assert again.left_minor == 650 + 1200
        with pytest.raises(RuleViolation, match="1200 is left to refund at this till"):
            s.refund_foreign(again, [("MUG-01", 2)])
        with pytest.raises(RuleViolation, match="choose at least one item"):
            s.refund_foreign(again, [])
        rest = s.refund_foreign(again, None).event.payload  # all that is left, per rate
        assert rest["lines"] == [] and rest["total_minor"] == 650 + 1200
        with pytest.raises(RuleViolation, match="nothing left to refund"):
            s.refund_foreign(s.find_refund(qr), None)
        refunds = [e for e in till.log.events() if e.type == ev.REFUND_ISSUED]
        assert len(refunds) == 2


def test_same_till_and_unknown_till_receipts_go_the_way_they_always_did(tills):
    a, b, c = tills
    own, own_qr = sell_at(b, [CartLine("JAM-FR", 1)], "cash")
    _sale, stranger_qr = sell_at(c, [CartLine("JAM-FR", 1)], "cash")
    with Till.open(b) as till:
        s = Session(till)
        found = s.find_refund(own_qr)
        assert isinstance(found, dict) and found["sale_id"] == own["sale_id"]
        assert s.find_refund(str(own["receipt_no"]))["sale_id"] == own["sale_id"]
        # c1 is no roster till: the same-till refusal, as before the roster existed
        with pytest.raises(RuleViolation, match="from till c1, not this one"):
            s.find_refund(stranger_qr)
        # a roster till's receipt signed by another key: the core's refusal
        fields, _sig, _signed = receipt_sig.parse_payload(
            sell_at(a, [CartLine("CAFE", 1)], "cash")[1]
        )
        from nacl.signing import SigningKey

        forged = receipt_sig.sign_fields(fields, SigningKey(bytes(range(32))))
        with pytest.raises(RuleViolation, match="signature is not that till's"):
            s.find_refund(forged)
        with pytest.raises(RuleViolation, match="not a tillbox receipt"):
            s.find_refund("TB2*garbage*")


# -- the event the till trades at -------------------------------------------------------------
H = 3600 * 1000
T0 = 1_767_258_000_000  # 2026-01-01 09:00 UTC


def test_the_bar_shows_the_cores_pick_and_the_chooser_offers_the_cores_candidates(tmp_path, region):
    from appliance.testing import TillClock, confirm_clock
    from systest.multitill import schedule_of, scheduled

    (a,) = make_tills(tmp_path, region, ("a1",))
    with Till.open(a) as till:
        s = Session(till)
        assert not s.event_status().scheduled  # no schedule: no pill, sales as before
        assert s.event_choices() == ()
    fair = scheduled("fair-1", T0, T0 + 8 * H, name="Winter Fair")
    talk = scheduled("talk-1", T0 + H, T0 + 2 * H, name="Makers' Talk")
    later = scheduled("late-1", T0 + 24 * H, T0 + 25 * H)
    deliver(a, region, schedule_of(fair, talk, later), 1)
    with TillClock(T0 + H + 1) as clock, Till.open(a) as till:
        s = Session(till)
        unsure = s.event_status()
        assert (unsure.scheduled, unsure.asking, unsure.reason) == (True, True, "clock_unconfirmed")
        assert {e.id for e in s.event_choices()} == {"fair-1", "talk-1", "late-1"}
        confirm_clock(till)
        overlap = s.event_status()
        assert (overlap.asking, overlap.reason) == (True, "overlap")
        assert [e.id for e in s.event_choices()] == ["fair-1", "talk-1"]
        s.add("MUG-01")
        with pytest.raises(RuleViolation, match="which event is this sale at"):
            s.pay("card")
        with pytest.raises(TillError, match="not in this stall's schedule"):
            s.choose_event("late-2")
        s.choose_event("talk-1")
        chosen = s.event_status()
        assert (chosen.asking, chosen.how, chosen.event.name) == (False, "chosen", "Makers' Talk")
        # the same question's events stay on offer: a wrong tap can be undone
        assert [e.id for e in s.event_choices()] == ["fair-1", "talk-1"]
        assert s.pay("card").payload["event_id"] == "talk-1"
        clock.set(T0 + 3 * H)  # the talk is over: the clock alone names the fair
        by_clock = s.event_status()
        assert (by_clock.how, by_clock.event.name, by_clock.asking) == (
            "clock",
            "Winter Fair",
            False,
        )
        assert s.event_choices() == ()
        with pytest.raises(RuleViolation, match="nothing to choose"):
            s.choose_event("talk-1")
        clock.set(T0 + 10 * H)  # nothing on: ask, offering the nearest
        s.choose_event("")
        assert s.event_status().event is None and not s.event_status().asking


# -- bookings -----------------------------------------------------------------------------------
BOOKED = [
    {
        "id": "bk-paid",
        "number": 7,
        "name": "Ada  Lovelace",
        "payment": "paid_online",
        "items": [
            {"sku": "BOARD-ENG", "qty": 1, "engraving": "Ada & Max"},
            {"sku": "HONEY", "qty": 2},
        ],
        "stall": "s1",
    },
    {
        "id": "bk-pickup",
        "number": 8,
        "name": "Charles Babbage",
        "payment": "pay_at_pickup",
        "items": [{"sku": "KEYRING-ENG", "qty": 1, "engraving": "CB"}, {"sku": "MUG-01", "qty": 1}],
        "stall": "",
    },
]


def test_bookings_listed_found_handed_over_once_and_paid_at_pickup(tills, region):
    from appliance import saleopen
    from appliance.formats import region as fmt

    _a, b, _c = tills
    with Till.open(b) as till:
        s = Session(till)
        assert not s.has_bookings()
        with pytest.raises(RuleViolation, match="no bookings have reached this till"):
            s.bookings()
    deliver(b, region, fmt.Bookings.from_json({"bookings": BOOKED}), 3)
    with Till.open(b) as till:
        s = Session(till)
        assert s.has_bookings()
        rows = s.bookings()
        assert [(r.booking.number, r.redeemed) for r in rows] == [(7, False), (8, False)]
        assert rows[0].items == '1 x Engraved oak board "Ada & Max", 2 x Wildflower honey 250 g'
        assert rows[0].engravings == ["Ada & Max"]
        assert [r.booking.number for r in s.bookings("ada lovelace")] == [7]  # spacing aside
        assert s.bookings("nobody") == []
        booking, via = s.find_booking(qr=fmt.booking_qr(region.key, "demo", "bk-paid", 7))
        assert via == "qr"
        handed = s.hand_over(booking, via)
        assert handed["due_minor"] == 0 and handed["sale_id"] == ""
        assert [
            ln["personalisation"]["text"] for ln in handed["lines"] if ln.get("personalisation")
        ] == ["Ada & Max"]
        with pytest.raises(RuleViolation, match="already handed over at this till"):
            s.hand_over(booking, via)
        assert [r.redeemed for r in s.bookings()] == [True, False]

        pickup, via = s.find_booking(name="babbage")
        assert s.hand_over(pickup, via) is None  # the pay screen takes the money
        assert s.pickup == (pickup, "name")
        assert saleopen.is_open(till.data_dir)  # an update waits for this payment too
        s.cancel_pickup()  # the cashier left the pay screen: nothing handed over
        assert not saleopen.is_open(till.data_dir) and s.pickup is None
        s.add("CAFE")  # the cart being built stays as it is
        s.hand_over(pickup, via)
        assert s.due("cash") == 900 + 1200  # the booking's items, not the cart's
        sale = s.pay("cash", 5000)
        assert sale.payload["booking_id"] == "bk-pickup" and sale.payload["total_minor"] == 2100
        assert s.pickup is None and [(c.sku, c.qty) for c in s.cart] == [("CAFE", 1)]
        assert s.due("cash") == 280
        s.hand_over(pickup, "number")
        with pytest.raises(RuleViolation, match="already handed over at this till"):
            s.pay("card")
        s.cancel_pickup()
        assert s.pickup is None
        redeemed = [e.payload for e in till.log.events() if e.type == ev.BOOKING_REDEEMED]
        assert [(r["booking_id"], r["via"]) for r in redeemed] == [
            ("bk-paid", "qr"),
            ("bk-pickup", "name"),
        ]


def test_the_camera_reads_a_booking_code_and_says_why_not_in_the_bookings_words(tmp_path):
    import io

    import qrcode

    from ui.devices import BOOKING, decode_qr

    def png(text=None):
        from PIL import Image

        image = qrcode.make(text, border=4) if text else Image.new("L", (200, 200), 255)
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()

    assert decode_qr(png("TBB1*demo*bk-1*7*sig"), BOOKING) == "TBB1*demo*bk-1*7*sig"
    with pytest.raises(TillError) as info:
        decode_qr(png(), BOOKING)
    assert str(info.value) == (
        "no QR code in view; hold the booking's QR code in front of the camera and scan "
        "again, or search by number or name"
    )
    with pytest.raises(TillError, match="hold the receipt's QR code"):
        decode_qr(png())  # the refund scan's words are unchanged
