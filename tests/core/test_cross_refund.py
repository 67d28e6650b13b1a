"""Refund at another till, offline: a receipt of any till in the roster, checked with that
till's key from the roster, bounded by what the receipt states less what this till
already refunded of it, recorded with the selling till's sale reference. Same-till
refunds by QR stay exactly what they were."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from appliance import events as ev
from appliance import projections, refund_scan
from appliance.errors import RuleViolation
from appliance.formats import receipt as receipt_sig
from appliance.pricing import CartLine
from appliance.till import Till
from systest.multitill import deliver, make_tills, refund_receipt_at, roster_of, sell_at


@pytest.fixture
def tills(tmp_path, region):
    a, b, c = make_tills(tmp_path, region, ("a1", "b1", "c1"))
    roster = roster_of([a, b])  # c1 is not in the roster
    for folder in (a, b, c):
        deliver(folder, region, roster, 1)
    return a, b, c


def test_a_receipt_of_another_roster_till_is_refunded_with_its_sale_reference(tills, cli):
    a, b, _c = tills
    sale, qr = sell_at(a, [CartLine("MUG-01", 2), CartLine("HONEY", 1)], "cash")
    refund = refund_receipt_at(b, qr, [("MUG-01", 1)])
    p = refund.payload
    assert (p["sale_device"], p["sale_receipt_no"], p["sale_id"]) == ("a1", sale["receipt_no"], "")
    with Till.open(a) as till_a:
        event = till_a.find_sale(sale["receipt_no"])
        assert event.hash.startswith(p["sale_event_ref"]) and len(p["sale_event_ref"]) == 48
    assert p["payment"] == {"method": "cash"}
    assert [(ln["sku"], ln["qty"], ln["gross_minor"]) for ln in p["lines"]] == [("MUG-01", 1, 1200)]
    assert p["total_minor"] == 1200 and p["taxes"][0]["rate_bp"] == 2000
    with Till.open(b) as till_b:
        assert till_b.stock()["MUG-01"] == 41  # the mug came back to this till's stock
        # this till's own sale numbers are untouched by the other till's receipt number
        assert projections.snapshot(till_b.log.conn)["sale_lines"] == []
        assert projections.rebuild(till_b.log.conn) == projections.snapshot(till_b.log.conn)
        # b's own refund receipt: signed by b, naming a1's receipt number as refunded
        printed = receipt_sig.receipt_qr_payload(till_b, refund)
        check = receipt_sig.verify_receipt_payload(printed, till_b.public_key_hex())
        assert check.ok and check.fields.kind == "R" and check.fields.device_id == "b1"
        assert check.fields.refunded_receipt_no == sale["receipt_no"]
    # the CLI does the same, says which till sold it, and bounds what is left
    out = cli("refund", "--data-dir", str(b.root), "--receipt-qr", qr, "--json")
    assert out.code == 0, out.err
    rest = out.json()
    assert rest["sale_device"] == "a1" and rest["sale_receipt_no"] == sale["receipt_no"]
    assert rest["lines"] == []  # no items named: the money left per rate, no stock
    assert rest["total_minor"] == sale["total_minor"] - 1200
    again = cli("refund", "--data-dir", str(b.root), "--receipt-qr", qr)
    assert again.code == 1 and "nothing left to refund" in again.err


def test_never_more_than_the_receipt_states_less_what_this_till_refunded(tills):
    a, b, _c = tills
    _sale_a, qr = sell_at(a, [CartLine("MUG-01", 1)])
    with pytest.raises(RuleViolation, match="1200 sold there and 1200 is left"):
        refund_receipt_at(b, qr, [("MUG-01", 2)])
    with pytest.raises(RuleViolation, match="sold nothing at 5.5 % tax"):
        refund_receipt_at(b, qr, [("HONEY", 1)])
    refund_receipt_at(b, qr, [("MUG-01", 1)])
    with pytest.raises(RuleViolation, match="0 is left"):
        refund_receipt_at(b, qr, [("POSTCARD", 1)])
    with pytest.raises(RuleViolation, match="personalised"):
        refund_receipt_at(b, qr, [("KEYRING-ENG", 1)])
    # till a itself knows nothing of b's refund while offline: it refunds its own sale
    # in full (the region flags the pair: edge/reconcile.py)
    assert refund_receipt_at(a, qr).payload["total_minor"] == 1200


def test_forged_altered_foreign_and_unlisted_receipts_are_refused(tills, tmp_path, region):
    a, b, c = tills
    _sale_a, qr = sell_at(a, [CartLine("TEE-M", 1)])
    fields, _sig, _signed = receipt_sig.parse_payload(qr)
    forged = receipt_sig.sign_fields(fields, SigningKey(bytes(32)))  # not a1's key
    with pytest.raises(RuleViolation, match="key id|signature"):
        refund_receipt_at(b, forged)
    altered = qr.replace("*2000:2000*", "*2000:9000*")
    assert altered != qr
    with pytest.raises(RuleViolation, match="signature is not that till's"):
        refund_receipt_at(b, altered)
    _sale_c, qr_c = sell_at(c, [CartLine("TEE-M", 1)])
    with pytest.raises(RuleViolation, match="not in this tenant's roster"):
        refund_receipt_at(b, qr_c)
    (other,) = make_tills(tmp_path / "acme", region, ("x1",), tenant="acme")
    _sale_x, qr_x = sell_at(other, [CartLine("TEE-M", 1)])
    with pytest.raises(RuleViolation, match="tenant acme"):
        refund_receipt_at(b, qr_x)
    refund_qr = None
    with Till.open(a) as till_a:
        event = till_a.refund(1).event
        refund_qr = receipt_sig.receipt_qr_payload(till_a, event)
    with pytest.raises(RuleViolation, match="refund receipt"):
        refund_receipt_at(b, refund_qr)
    with pytest.raises(RuleViolation, match="not a tillbox receipt"):
        refund_receipt_at(b, "https://example.com/x")
    with Till.open(b) as till_b:
        assert not [e for e in till_b.log.events() if e.type == ev.REFUND_ISSUED]


def test_without_a_roster_another_tills_receipt_cannot_be_checked(tmp_path, region):
    a, b = make_tills(tmp_path, region, ("a1", "b1"))
    _sale_a, qr = sell_at(a, [CartLine("TEE-M", 1)])
    with pytest.raises(RuleViolation, match="holds no roster"):
        refund_receipt_at(b, qr)


def test_an_old_tb1_receipt_is_refunded_only_where_it_was_printed(tills):
    a, b, _c = tills
    _sale_a, _qr = sell_at(a, [CartLine("TEE-M", 1)])
    with Till.open(a) as till_a:
        event = till_a.find_sale(1)
        key = SigningKey(bytes.fromhex(till_a.data_dir.private_key_path.read_text().strip()))
        tb1 = receipt_sig.sign_fields(
            receipt_sig.expected_fields(till_a.log, event, "TB1", ""), key
        )
    with pytest.raises(RuleViolation, match="old TB1 receipt"):
        refund_receipt_at(b, tb1)
    assert refund_receipt_at(a, tb1).payload["sale_receipt_no"] == 1  # at its own till, as before


def test_a_same_till_receipt_is_refunded_exactly_as_by_receipt_number(tills, cli):
    a, _b, _c = tills
    sale, qr = sell_at(a, [CartLine("MUG-01", 2)])
    refund = refund_receipt_at(a, qr, [("MUG-01", 1)]).payload
    assert "sale_device" not in refund and refund["sale_id"] == sale["sale_id"]
    assert [ln["line"] for ln in refund["lines"]] == [1]
    with Till.open(a) as till_a:
        rows = projections.sale_lines(till_a.log.conn, sale["receipt_no"])
        assert rows[0][3] == 1  # refunded_qty on the till's own sale line
    out = cli("refund", "--data-dir", str(a.root), "--receipt-qr", qr, "--item", "MUG-01:2")
    assert out.code == 1 and "only 1 of 2 sold are left" in out.err
    both = cli("refund", "--data-dir", str(a.root), "--sale", "1", "--receipt-qr", qr)
    assert both.code == 1 and "--sale" in both.err
    neither = cli("refund", "--data-dir", str(a.root))
    assert neither.code == 1


def test_currency_of_the_receipt_must_be_this_tills(tills, region):
    from systest.multitill import schedule_of, scheduled

    a, b, _c = tills
    _sale_a, qr = sell_at(a, [CartLine("TEE-M", 1)])  # EUR (eu-market)
    from appliance.testing import TillClock, confirm_clock

    t0 = 1_767_258_000_000
    deliver(b, region, schedule_of(scheduled("fest", t0, t0 + 3600_000, "ch-festival")), 2)
    with TillClock(t0 + 1), Till.open(b) as till_b:
        confirm_clock(till_b)
        with pytest.raises(RuleViolation, match="in EUR and this till trades in CHF"):
            refund_scan.refund_by_receipt(till_b, qr)
