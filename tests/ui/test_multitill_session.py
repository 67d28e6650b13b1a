"""The kiosk's view model for several tills and events, without Kivy, on real tills.

Two demo tills of one tenant (a1 sells, b1 is the kiosk's), the region's lists signed
with a real region key and applied as a USB file would be (systest.multitill). The
rules are the core's; these check that the session asks the core and shows its words.
"""

from __future__ import annotations

import pytest

from appliance import events as ev
from appliance.errors import RuleViolation
from appliance.formats import receipt as receipt_sig
from appliance.pricing import CartLine
from appliance.till import Till
from systest.multitill import deliver, make_tills, roster_of
from ui.session import ForeignReceipt, Session


@pytest.fixture
def tills(tmp_path, region):
    a, b, c = make_tills(tmp_path, region, ("a1", "b1", "c1"))
    roster = roster_of([a, b])  # c1 is not in the roster
    for folder in (a, b, c):
        deliver(folder, region, roster, 1)
    return a, b, c


def _sold_at(folder, cart, method="cash"):
    with Till.open(folder) as till:
        sale = till.sell(cart, method)
        return sale.payload, receipt_sig.receipt_qr_payload(till, sale.event)


def test_a_receipt_of_another_roster_till_opens_with_what_is_left_to_refund_here(tills):
    a, b, _c = tills
    sale, qr = _sold_at(a, [CartLine("MUG-01", 2), CartLine("HONEY", 1)])
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
    own, own_qr = _sold_at(b, [CartLine("JAM-FR", 1)])
    _sale, stranger_qr = _sold_at(c, [CartLine("JAM-FR", 1)])
    with Till.open(b) as till:
        s = Session(till)
        found = s.find_refund(own_qr)
        assert isinstance(found, dict) and found["sale_id"] == own["sale_id"]
        assert s.find_refund(str(own["receipt_no"]))["sale_id"] == own["sale_id"]
        # c1 is no roster till: the same-till refusal, as before the roster existed
        with pytest.raises(RuleViolation, match="from till c1, not this one"):
            s.find_refund(stranger_qr)
        # a roster till's receipt signed by another key: the core's refusal
        fields, _sig, _signed = receipt_sig.parse_payload(_sold_at(a, [CartLine("CAFE", 1)])[1])
        from nacl.signing import SigningKey

        forged = receipt_sig.sign_fields(fields, SigningKey(bytes(range(32))))
        with pytest.raises(RuleViolation, match="signature is not that till's"):
            s.find_refund(forged)
        with pytest.raises(RuleViolation, match="not a tillbox receipt"):
            s.find_refund("TB2*garbage*")
