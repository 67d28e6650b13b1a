"""Reconciliation by intent at the region, over real SQL (SQLite and PostgreSQL): tills of
one stall trade offline (cross-till refunds, a booking redeemed twice, the last unit sold
twice), their signed segments are ingested, and every refund is linked to its sale and
every flag is right, against an oracle folded from the tills' own logs. The region's
lists reach the tills as the edge signed and kept them."""

from __future__ import annotations

import json

import pytest

from appliance import events as ev
from appliance import refund_scan, region
from appliance.formats.region import open_region_data
from appliance.pricing import CartLine
from appliance.testing import run_cli
from appliance.till import Till
from edge import admin, reconcile, regionlists
from edge.ingest import Ingestor
from edge.store import Store
from systest.intents import double_redemptions_from_logs, over_refunds_from_logs
from systest.multitill import ingest_all, make_tills, scheduled, sell_at
from systest.reports import set_stall
from systest.sync import enroll

T0 = 1_767_258_000_000


@pytest.fixture
def world(tmp_path, region, any_db):
    folders = make_tills(tmp_path, region, ("a1", "b1", "c1"))
    enroll(any_db, *folders)
    store = Store.open(any_db)
    for device, stall in (("a1", "s1"), ("b1", "s1"), ("c1", "s2")):
        set_stall(store, device, stall)
    yield store, folders
    store.close()


def _apply_kept(store, folder, tenant: str, kind: str) -> region.Applied:
    kept = regionlists.kept(store, tenant, kind)
    assert kept is not None
    with Till.open(folder) as till:
        return region.apply_signed(till, kept.data, kind)


def test_offline_tills_reconcile_by_intent(world, region):
    store, (a, b, c) = world
    # the region's lists, signed and kept by the edge, reach the tills as they are
    regionlists.publish_roster(store, region.key, "demo")
    booked = {
        "id": "bk-1",
        "name": "Ada Lovelace",
        "payment": "paid_online",
        "items": [{"sku": "HONEY", "qty": 1}],
    }
    _kept, booking, qr = regionlists.add_booking(store, region.key, "demo", booked)
    for folder in (a, b, c):
        assert _apply_kept(store, folder, "demo", "roster").status == "applied"
        assert _apply_kept(store, folder, "demo", "bookings").status == "applied"
    with Till.open(b) as till:
        assert till.lists.stall(till.log.conn, "b1") == "s1"
    admin.stock_set(store, "demo", "BOARD-ENG", 1)  # one oak board left in the region

    # everything below happens with every till offline
    sale, sale_qr = sell_at(a, [CartLine("MUG-01", 2), CartLine("HONEY", 1)], "cash")
    with Till.open(b) as till:  # B refunds one mug of A's receipt ...
        cross = refund_scan.refund_by_receipt(till, sale_qr, [("MUG-01", 1)]).event
    with Till.open(a) as till:  # ... and A, not knowing, refunds the whole sale
        own = till.refund(sale["receipt_no"]).event
    with Till.open(c) as till:  # C (another stall) refunds the whole receipt again
        third = refund_scan.refund_by_receipt(till, sale_qr).event
    clean, clean_qr = sell_at(a, [CartLine("TEE-M", 1)])
    with Till.open(b) as till:
        linked_only = refund_scan.refund_by_receipt(till, clean_qr).event  # within bounds
    for folder in (a, b):
        out = run_cli("booking", "redeem", "--data-dir", str(folder.root), "--qr", qr, "--json")
        assert out.code == 0, out.err
        assert out.json()["due_minor"] == 0
    sell_at(a, [CartLine("BOARD-ENG", 1)])
    sell_at(b, [CartLine("BOARD-ENG", 1)])

    edge = Ingestor(store, region.key)
    ingest_all(edge, [a, b, c])
    report = reconcile.from_store(store)

    linked = {(x["refund"]["device"], x["refund"]["seq"]): x for x in report.links}
    assert set(linked) == {
        (r.device_id, r.seq) for r in (cross, own, third, linked_only)
    }  # every refund, linked to its sale
    assert (
        linked[(cross.device_id, cross.seq)]["sale"]["seq"]
        == linked[(a.load_config().device_id, own.seq)]["sale"]["seq"]
    )
    assert linked[(cross.device_id, cross.seq)]["by"] == "receipt"
    assert linked[(own.device_id, own.seq)]["by"] == "sale_id"
    assert report.pending == [] and report.ref_mismatches == [] and report.unreadable == []

    (flag,) = report.over_refunds
    assert (flag["sale"]["device"], flag["sale"]["receipt_no"]) == ("a1", sale["receipt_no"])
    assert {(r["device"], r["receipt_no"]) for r in flag["refunds"]} == {
        ("b1", cross.payload["receipt_no"]),
        ("a1", own.payload["receipt_no"]),
        ("c1", third.payload["receipt_no"]),
    }
    # sold 2 mugs (2400 at 20 %) + honey (650 at 5.5 %). Back: b1 1200 at 20 %; a1 the
    # whole sale; c1 (knowing nothing of the others) the whole receipt again. Over: at
    # 20 % 1200 + 2400 + 2400 - 2400, at 5.5 % 650 + 650 - 650.
    assert flag["over_minor"] == (1200 + 2400 + 2400 - 2400) + (650 + 650 - 650)
    assert flag["over_qty"] == {"MUG-01": 1}  # b1 1 + a1 2 of 2 sold; c1 named no items
    assert {
        (f["sale"]["device"], f["sale"]["receipt_no"]): f["over_minor"] for f in report.over_refunds
    } == over_refunds_from_logs([a, b, c])

    (double,) = report.double_redemptions
    assert double["booking_id"] == booking.id and double["booking_number"] == booking.number
    assert [r["device"] for r in double["redemptions"]] == ["a1", "b1"]
    assert [r["due_minor"] for r in double["redemptions"]] == [0, 0]
    assert {
        f["booking_id"]: [r["device"] for r in f["redemptions"]] for f in report.double_redemptions
    } == double_redemptions_from_logs([a, b, c])

    assert [(f["sku"], f["qty_after"]) for f in report.negative_stock] == [("BOARD-ENG", -1)]
    assert report.flags == 3
    # the ledgers still equal a recomputation from what was stored: nothing was dropped
    assert admin.check(store)["ok"]

    out = run_cli("edge", "reconcile", "--db", store.url, "--json")
    assert out.code == 0
    assert out.json()["flags"] == 3 and out.json()["refunds_linked"] == 4
    human = run_cli("edge", "reconcile", "--db", store.url).out
    assert "over-refund: sale a1 receipt" in human and "4250 over" in human
    assert "booking 1 redeemed 2 times: a1 seq" in human and "stock below zero" in human


def test_a_refund_whose_sale_is_not_stored_yet_waits_then_links(world, region):
    store, (a, b, _c) = world
    regionlists.publish_roster(store, region.key, "demo")
    for folder in (a, b):
        _apply_kept(store, folder, "demo", "roster")
    _sale, qr = sell_at(a, [CartLine("TEE-M", 1)])
    with Till.open(b) as till:
        refund_scan.refund_by_receipt(till, qr)
    edge = Ingestor(store, region.key)
    ingest_all(edge, [b])  # a1 is still offline
    early = reconcile.from_store(store)
    assert early.links == [] and len(early.pending) == 1
    assert early.pending[0]["sale"] == {"device": "a1", "receipt_no": 1}
    ingest_all(edge, [a])
    late = reconcile.from_store(store)
    assert len(late.links) == 1 and late.pending == [] and late.flags == 0


def test_the_edge_signs_keeps_and_hands_out_the_lists(world, region, tmp_path):
    store, (a, _b, _c) = world
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"events": [scheduled("fair-1", T0, T0 + 3600_000)]}))
    usb = tmp_path / "schedule.tbru"
    base = ["--db", store.url, "--key", str(region.key_path), "--tenant", "demo"]
    out = run_cli(
        "edge",
        "event",
        "publish",
        *base,
        "--file",
        str(events),
        "--version",
        "5",
        "--out",
        str(usb),
        "--json",
    )
    assert out.code == 0, out.err
    assert out.json()["version"] == 5 and out.json()["topic"] == "tillbox/v1/demo/region/schedule"
    assert usb.read_bytes() == regionlists.kept(store, "demo", "schedule").data
    applied = run_cli("event", "apply", "--data-dir", str(a.root), str(usb), "--json")
    assert applied.code == 0 and applied.json()["version"] == 5
    stale = run_cli("edge", "event", "publish", *base, "--file", str(events), "--version", "5")
    assert stale.code == 1 and "not above the kept version 5" in stale.err
    events.write_text(json.dumps({"events": [scheduled("fair-1", T0, T0)]}))
    bad = run_cli("edge", "event", "publish", *base, "--file", str(events))
    assert bad.code == 1 and "ends" in bad.err and bad.err.count("\n") == 1
    events.write_text("{not json")
    assert run_cli("edge", "event", "publish", *base, "--file", str(events)).code == 1

    added = run_cli(
        "edge",
        "booking",
        "add",
        *base,
        "--name",
        "Grace Hopper",
        "--payment",
        "pay_at_pickup",
        "--item",
        "KEYRING-ENG:1:GH 1906",
        "--item",
        "MUG-01",
        "--stall",
        "s1",
        "--out",
        str(tmp_path / "bookings.tbru"),
        "--json",
    )
    assert added.code == 0, added.err
    info = added.json()
    assert info["booking"]["number"] == 1 and info["qr"].startswith("TBB1*demo*")
    assert info["booking"]["items"][0] == {"sku": "KEYRING-ENG", "qty": 1, "engraving": "GH 1906"}
    second = run_cli(
        "edge",
        "booking",
        "add",
        *base,
        "--name",
        "Alan",
        "--payment",
        "paid_online",
        "--item",
        "HONEY:2",
        "--json",
    )
    assert second.json()["booking"]["number"] == 2  # added to the kept list, not replacing it
    listed = run_cli("edge", "booking", "list", *base[:-2], "--tenant", "demo", "--json")
    assert [x["name"] for x in listed.json()["bookings"]] == ["Grace Hopper", "Alan"]
    dup = run_cli(
        "edge",
        "booking",
        "add",
        *base,
        "--id",
        info["booking"]["id"],
        "--name",
        "X",
        "--payment",
        "paid_online",
        "--item",
        "HONEY",
    )
    assert dup.code == 1 and "exists already" in dup.err

    assert (
        run_cli("region", "apply", "--data-dir", str(a.root), str(tmp_path / "bookings.tbru")).code
        == 0
    )
    # the schedule applied above asks which event this is (the clock is unconfirmed)
    assert run_cli("event", "choose", "--data-dir", str(a.root), "--none").code == 0
    redeemed = run_cli(
        "booking",
        "redeem",
        "--data-dir",
        str(a.root),
        "--qr",
        info["qr"],
        "--pay",
        "card",
        "--json",
    )
    assert redeemed.code == 0, redeemed.err
    assert redeemed.json()["lines"][0]["personalisation"]["text"] == "GH 1906"

    roster = run_cli("edge", "roster", "publish", *base, "--json")
    assert roster.code == 0
    kept = regionlists.kept(store, "demo", "roster")
    _update, value = open_region_data(kept.data, region.key.verify_key, "roster")
    assert [(d.device_id, d.stall) for d in value.devices] == [
        ("a1", "s1"),
        ("b1", "s1"),
        ("c1", "s2"),
    ]


def test_a_revoked_device_leaves_the_roster(world, region):
    store, _folders = world
    store.execute(
        "INSERT INTO device_revocations (device_id, revoked_ms, reason) VALUES ('b1', 1, 'lost')"
    )
    kept = regionlists.publish_roster(store, region.key, "demo")
    _u, value = open_region_data(kept.data, region.key.verify_key)
    assert [d.device_id for d in value.devices] == ["a1", "c1"]


def test_reconcile_leaves_out_what_it_cannot_read_and_flags_a_wrong_reference():
    sale = reconcile.Stored(
        "demo",
        "a1",
        5,
        ev.SALE_COMPLETED,
        "ab" * 32,
        {
            "sale_id": "s-1",
            "receipt_no": 3,
            "taxes": [{"rate_bp": 2000, "gross_minor": 100}],
            "lines": [{"sku": "X", "qty": 1}],
        },
    )
    wrong = reconcile.Stored(
        "demo",
        "b1",
        9,
        ev.REFUND_ISSUED,
        "cd" * 32,
        {
            "refund_id": "r-1",
            "sale_id": "",
            "sale_device": "a1",
            "sale_receipt_no": 3,
            "sale_event_ref": "ff" * 24,
            "receipt_no": 1,
            "total_minor": 100,
            "taxes": [{"rate_bp": 2000, "gross_minor": 100}],
            "lines": [],
        },
    )
    broken = reconcile.Stored("demo", "b1", 10, ev.BOOKING_REDEEMED, "ef" * 32, {"booking_id": 5})
    report = reconcile.reconcile([sale, wrong, broken])
    assert report.unreadable == [{"device": "b1", "seq": 10, "type": ev.BOOKING_REDEEMED}]
    assert len(report.ref_mismatches) == 1 and report.links == []


def test_the_reconcile_command_prints_every_flag_and_what_waits(world, region, tmp_path):
    store, (a, b, _c) = world
    regionlists.publish_roster(store, region.key, "demo")
    booked = {"name": "Ada", "payment": "paid_online", "items": [{"sku": "HONEY", "qty": 1}]}
    _kept, booking, qr = regionlists.add_booking(store, region.key, "demo", booked)
    for folder in (a, b):
        _apply_kept(store, folder, "demo", "roster")
        _apply_kept(store, folder, "demo", "bookings")
    admin.stock_set(store, "demo", "BOARD-ENG", 1)
    sale, sale_qr = sell_at(a, [CartLine("MUG-01", 2)])
    with Till.open(b) as till:
        refund_scan.refund_by_receipt(till, sale_qr, [("MUG-01", 1)])
    with Till.open(a) as till:
        till.refund(sale["receipt_no"])
    for folder in (a, b):
        assert run_cli("booking", "redeem", "--data-dir", str(folder.root), "--qr", qr).code == 0
        sell_at(folder, [CartLine("BOARD-ENG", 1)])
    edge = Ingestor(store, region.key)
    ingest_all(edge, [a, b])
    _later, later_qr = sell_at(a, [CartLine("TEE-M", 1)])  # a1 offline again ...
    with Till.open(b) as till:
        waiting = refund_scan.refund_by_receipt(till, later_qr).event  # ... refunded at b1
    ingest_all(edge, [b])

    out = run_cli("edge", "reconcile", "--db", store.url, "--json")
    assert out.code == 0, out.err  # flags are no failure of the command
    report = out.json()
    assert (report["flags"], len(report["pending"])) == (3, 1)
    text = run_cli("edge", "reconcile", "--db", store.url)
    assert text.code == 0
    lines = text.out.splitlines()
    assert lines[0] == (
        f"refunds linked to their sale: {report['refunds_linked']}, waiting for their sale: 1; "
        "flags: 3"
    )
    (over,) = [ln for ln in lines if ln.startswith("over-refund: ")]
    flag = report["over_refunds"][0]
    for r in flag["refunds"]:
        assert f"{r['device']} receipt {r['receipt_no']} (seq {r['seq']}, " in over
    assert f"{flag['over_minor']} over" in over and "MUG-01 1 more than sold" in over
    assert "at another till" in over
    (double,) = [ln for ln in lines if ln.startswith(f"booking {booking.number} redeemed 2")]
    for r in report["double_redemptions"][0]["redemptions"]:
        assert f"{r['device']} seq {r['seq']} (paid_online, due 0)" in double
    assert booking.id in double
    (stock,) = [ln for ln in lines if ln.startswith("stock below zero: ")]
    assert "demo/BOARD-ENG = -1" in stock
    (pending,) = [ln for ln in lines if ln.startswith("waiting: ")]
    assert f"b1 receipt {waiting.payload['receipt_no']} (seq {waiting.seq}, " in pending
    assert f"for sale a1 receipt {_later['receipt_no']}" in pending
    assert len(lines) == 5  # the summary, three flags, one refund waiting
    bad = run_cli("edge", "reconcile", "--db", f"sqlite:///{tmp_path}/no/such/dir/\0x.db")
    assert bad.code == 1 and bad.err.count("\n") == 1
