"""Several tills of one stall under faults: each till has its own log, key and `tillbox
sync` agent process, connected through its own fault proxy to the suite's mosquitto (the
shipped config), and one `tillbox edge serve` stores what arrives. The region's lists
reach the tills retained over the broker. Tills are cut apart (offline) while they trade:
a refund at another till, the same receipt refunded on two tills, a booking handed over
on two tills, an event switch at its end time and after clock jumps.

After the faults stop, the checker (systest.sync.check_exactly_once, with its intents
part systest.multitill.check_intents) finds every event stored exactly once, every refund
linked to its sale, every flag the oracle's (folded from the tills' own logs), and the
ledgers equal to a recomputation from the region's store and to one from the logs."""

from __future__ import annotations

import json

import pytest

from appliance import events as ev
from appliance.errors import RuleViolation
from appliance.pricing import CartLine
from appliance.testing import TillClock, confirm_clock, run_cli
from appliance.till import Till
from edge import reconcile
from edge.store import Store
from systest.intents import double_redemptions_from_logs, over_refunds_from_logs
from systest.multitill import Stall, refund_receipt_at, scheduled, sell_at
from systest.sync import check_exactly_once, run_tillbox

pytestmark = pytest.mark.slow

H = 3600 * 1000
T0 = 1_767_258_000_000  # 2026-01-01 09:00 UTC


@pytest.fixture
def stall(tmp_path, broker, db_url, region):
    with Stall(tmp_path, broker, db_url, region, ("t1", "t2", "t3")) as s:
        roster = s.publish("roster", "publish")
        s.wait_list("roster", roster["version"])
        yield s


def region_report(db):
    store = Store.open(db)
    try:
        return reconcile.from_store(store), store.pending_refund_rows(), store.tax_ledger()
    finally:
        store.close()


def test_a_refund_at_another_till_while_both_are_offline(stall, db_url):
    t1, t2 = stall.tills["t1"], stall.tills["t2"]
    sell_at(t1, [CartLine("HONEY", 1)])  # an ordinary sale while online
    stall.wait_synced("t1")
    stall.cut("t1", "t2")
    stall.wait_offline("t1", "t2")
    sale, qr = sell_at(t1, [CartLine("MUG-01", 2), CartLine("TEE-M", 1)])
    refund = refund_receipt_at(t2, qr, [("MUG-01", 1)])  # t2 checks t1's key in its roster
    assert refund.payload["sale_device"] == "t1" and refund.payload["sale_id"] == ""
    # t2 comes back first: its refund reaches the region before the sale it refunds
    stall.heal("t2")
    stall.wait_synced("t2")
    early, waiting, tax = region_report(db_url)
    assert [p["sale"] for p in early.pending] == [{"device": "t1", "receipt_no": 2}]
    assert len(waiting) == 1 and any(row[1] == "unknown" for row in tax)
    stall.heal("t1")
    stall.proxies["t1"].reset()  # and its link breaks once more while it drains
    stall.wait_synced("t1")
    check_exactly_once(db_url, stall.folders)  # every refund linked, ledgers right
    late, waiting, tax = region_report(db_url)
    assert late.pending == [] and waiting == [] and late.flags == 0
    (link,) = [x for x in late.links if x["refund"]["device"] == "t2"]
    assert (link["by"], link["sale"]["device"], link["sale"]["receipt_no"]) == (
        "receipt",
        "t1",
        sale["receipt_no"],
    )
    assert {row[1] for row in tax} == {"eu-market"}  # nothing left under "unknown"


def test_one_receipt_refunded_on_two_tills_offline_is_flagged_with_the_amount(stall, db_url):
    t1, t2, t3 = (stall.tills[d] for d in ("t1", "t2", "t3"))
    stall.cut()
    stall.wait_offline()
    sale, qr = sell_at(t1, [CartLine("MUG-01", 2), CartLine("HONEY", 1)], "cash")
    with Till.open(t1) as till:
        own = till.refund(sale["receipt_no"]).event  # the whole sale, at the till that sold
    again = refund_receipt_at(t2, qr)  # t2 knows nothing of it: the whole receipt again
    third = refund_receipt_at(t3, qr, [("MUG-01", 1)])
    for device in ("t3", "t1", "t2"):
        stall.heal(device)
    stall.wait_synced()
    check_exactly_once(db_url, stall.folders)
    out = run_tillbox("edge", "reconcile", "--db", db_url, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    (flag,) = report["over_refunds"]
    gross = sum(t["gross_minor"] for t in sale["taxes"])
    # back: the whole sale twice and one mug (1200) once more than was sold
    assert flag["sold_minor"] == gross and flag["refunded_minor"] == 2 * gross + 1200
    assert flag["over_minor"] == gross + 1200
    assert flag["over_qty"] == {"MUG-01": 1}  # t1 2 + t3 1 of 2 sold; t2 named no items
    assert {(r["device"], r["seq"]) for r in flag["refunds"]} == {
        (e.device_id, e.seq) for e in (own, again, third)
    }
    assert {(flag["sale"]["device"], flag["sale"]["receipt_no"]): flag["over_minor"]} == (
        over_refunds_from_logs(stall.folders)
    )
    text = run_tillbox("edge", "reconcile", "--db", db_url).stdout
    assert f"{gross + 1200} over" in text and "MUG-01 1 more than sold" in text


def test_a_booking_handed_over_on_two_tills_offline_is_flagged_and_never_charged(stall, db_url):
    t1, t2 = stall.tills["t1"], stall.tills["t2"]
    added = stall.publish(
        "booking", "add", "--name", "Ada L.", "--payment", "paid_online",
        "--item", "BOARD-ENG:1:Ada & Max", "--item", "HONEY:2",
    )  # fmt: skip
    stall.wait_list("bookings", added["version"], "t1", "t2")
    stall.cut("t1", "t2")
    stall.wait_offline("t1", "t2")
    before = {d: stall.last_seq(d) for d in ("t1", "t2")}
    for folder in (t1, t2):
        out = run_cli(
            "booking", "redeem", "--data-dir", str(folder.root), "--qr", added["qr"], "--json"
        )
        assert out.code == 0, out.err
        assert (out.json()["due_minor"], out.json()["sale"]) == (0, None)
        # once on a till: the second time there is refused by the till itself
        again = run_cli("booking", "redeem", "--data-dir", str(folder.root), "--qr", added["qr"])
        assert again.code == 1
    for device, folder in (("t1", t1), ("t2", t2)):
        with Till.open(folder) as till:
            new = [e for e in till.log.events() if e.seq > before[device]]
            # paid online: handed over, never charged (no sale, no payment, no card exposure)
            assert [e.type for e in new] == [ev.BOOKING_REDEEMED]
            assert till.card_exposure_minor() == 0
            engraving = new[0].payload["lines"][0]["personalisation"]
            assert engraving["text"] == "Ada & Max"
    stall.heal()
    stall.wait_synced()
    check_exactly_once(db_url, stall.folders)
    report, _waiting, tax = region_report(db_url)
    (double,) = report.double_redemptions
    assert double["booking_id"] == added["booking"]["id"]
    assert [(r["device"], r["due_minor"], r["receipt_no"]) for r in double["redemptions"]] == [
        ("t1", 0, 0),
        ("t2", 0, 0),
    ]
    assert {double["booking_id"]: [r["device"] for r in double["redemptions"]]} == (
        double_redemptions_from_logs(stall.folders)
    )
    assert tax == []  # nothing was sold: no tax anywhere
    store = Store.open(db_url)
    try:
        assert store.stock_qty("demo", "HONEY") == -4  # both handovers took the goods
    finally:
        store.close()


def test_the_event_switches_at_its_end_time_and_after_clock_jumps(stall, db_url):
    t1, t2 = stall.tills["t1"], stall.tills["t2"]
    events = stall.root / "events.json"
    events.write_text(
        json.dumps(
            {
                "events": [
                    scheduled("fair-1", T0, T0 + 8 * H, "ch-festival", name="Winter Fair"),
                    scheduled("market-1", T0 + 8 * H, T0 + 12 * H, "eu-market"),
                ]
            }
        )
    )
    published = stall.publish("event", "publish", "--file", str(events))
    stall.wait_list("schedule", published["version"])
    with TillClock(T0 + 8 * H - 60_000) as clock:
        with Till.open(t1) as till:
            confirm_clock(till)
            at_fair = till.sell([CartLine("MUG-01", 1)], "card").payload
        stall.cut("t1")  # offline across the switch and the jumps
        stall.wait_offline("t1")
        clock.set(T0 + 8 * H)  # the fair's end: the market is current, to the millisecond
        with Till.open(t1) as till:
            at_market = till.sell([CartLine("MUG-01", 1)], "card").payload
        with Till.open(t2) as till:  # the other till of the stall, online, at the market
            confirm_clock(till)
            other = till.sell([CartLine("HONEY", 1)], "card").payload
        with Till.open(t1) as till:
            clock.set(T0 + H)  # the clock jumps back behind the last event: not trusted
            with pytest.raises(RuleViolation, match="tillbox event choose"):
                till.sell([CartLine("MUG-01", 1)], "card")
            till.choose_event("market-1")
            chosen = till.sell([CartLine("MUG-01", 1)], "card").payload
            clock.set(T0 + 13 * H)  # ... and forward past the market's end: none is on
            with pytest.raises(RuleViolation, match="tillbox event choose"):
                till.sell([CartLine("MUG-01", 1)], "card")
            till.choose_event("")
            after = till.sell([CartLine("MUG-01", 1)], "card").payload
    assert (at_fair["event_id"], at_fair["tax_profile"]) == ("fair-1", "ch-festival")
    assert (at_market["event_id"], at_market["tax_profile"]) == ("market-1", "eu-market")
    assert chosen["event_id"] == "market-1" and after["event_id"] == ""
    assert (other["event_id"], other["tax_profile"]) == ("market-1", "eu-market")
    with Till.open(t1) as till:
        switches = [
            (e.type, e.payload.get("event_id"), e.payload.get("how"))
            for e in till.log.events()
            if e.type in (ev.EVENT_STARTED, ev.EVENT_ENDED, ev.EVENT_CHOSEN)
        ]
    assert switches == [
        (ev.EVENT_STARTED, "fair-1", "clock"),
        (ev.EVENT_ENDED, "fair-1", "clock"),
        (ev.EVENT_STARTED, "market-1", "clock"),
        (ev.EVENT_CHOSEN, "market-1", None),
        (ev.EVENT_CHOSEN, "", None),
        (ev.EVENT_ENDED, "market-1", "chosen"),
    ]
    stall.heal("t1")
    stall.wait_synced()
    check_exactly_once(db_url, stall.folders)
    store = Store.open(db_url)
    try:
        per_event = {}
        for row in store.rollup_rows()["sales"]:
            _t, device, event_id, _day, _hour, currency, sales, *_amounts = row
            key = (device, event_id, currency)
            per_event[key] = per_event.get(key, 0) + int(sales)
        profiles = {row[1] for row in store.tax_ledger()}
    finally:
        store.close()
    assert per_event == {
        ("t1", "fair-1", "CHF"): 1,
        ("t1", "market-1", "EUR"): 2,
        ("t1", "", "EUR"): 1,
        ("t2", "market-1", "EUR"): 1,
    }
    assert profiles == {"ch-festival", "eu-market"}
