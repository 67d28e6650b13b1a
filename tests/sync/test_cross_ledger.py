"""The region's ledgers when tills trade offline with each other (SQLite and PostgreSQL):
a refund at another till is taxed under the refunded sale's profile, whichever till's
segments arrive first; a booking handed over paid online takes its items out of stock;
an edge database made before sales had their receipt number (or before promo codes
rolled up per promoter) is upgraded in place. The oracle is an independent fold of the
tills' own logs (systest.multitill)."""

from __future__ import annotations

import pytest

from appliance import region as lists
from appliance.pricing import CartLine
from appliance.testing import run_cli
from appliance.till import Till
from edge import admin, regionlists
from edge.ingest import Ingestor
from edge.store import Store
from systest.intents import check_intents, ledgers_from_logs
from systest.multitill import make_tills, refund_receipt_at, sell_at
from systest.reports import push, set_stall
from systest.sync import enroll


@pytest.fixture
def world(tmp_path, region, any_db):
    folders = make_tills(tmp_path, region, ("a1", "b1"))
    enroll(any_db, *folders)
    store = Store.open(any_db)
    for device in ("a1", "b1"):
        set_stall(store, device, "s1")
    kept = regionlists.publish_roster(store, region.key, "demo")
    for folder in folders:
        with Till.open(folder) as till:
            lists.apply_signed(till, kept.data, "roster")
    yield store, folders, Ingestor(store, region.key)
    store.close()


def tax(store) -> dict:
    return {(t, p, r): [int(x) for x in rest] for t, p, r, *rest in store.tax_ledger()}


def unknown_rows(store) -> list:
    rollup_tax = store.rollup_rows()["tax"]
    return [r for r in store.tax_ledger() if r[1] == "unknown"] + [
        r for r in rollup_tax if r[1] == "unknown"
    ]


def test_a_refund_at_another_till_is_taxed_under_the_sales_profile(world, any_db):
    store, (a, b), edge = world
    sale, qr = sell_at(a, [CartLine("MUG-01", 2), CartLine("HONEY", 1)])
    refund = refund_receipt_at(b, qr, [("MUG-01", 1)])
    assert refund.payload["sale_id"] == ""
    for folder in (a, b):  # the sale first: found by (a1, its receipt number)
        assert set(push(edge, folder)) == {"stored"}
    assert unknown_rows(store) == []
    standard = tax(store)[("demo", "eu-market", "standard")]
    assert standard[1] == 2400 + 0 - 1200  # two mugs sold, one refunded at b1
    assert tax(store) == {k: v for k, v in ledgers_from_logs([a, b])[0].items() if any(v)}
    assert admin.check(store)["ok"]
    check_intents(any_db, [a, b])


def test_a_refund_that_arrives_before_its_sale_is_settled_when_the_sale_arrives(world, any_db):
    store, (a, b), edge = world
    sale, qr = sell_at(a, [CartLine("TEE-M", 1), CartLine("HONEY", 2)], "cash")
    refund_receipt_at(b, qr)  # everything on the receipt, money per rate, no stock
    assert set(push(edge, b)) == {"stored"}  # a1 is still offline
    waiting = unknown_rows(store)
    assert {r[1] for r in waiting} == {"unknown"} and len(waiting) >= 2
    assert [(r[2], r[3], int(r[4])) for r in store.pending_refund_rows()] == [
        ("demo", "a1", sale["receipt_no"])
    ]
    report = admin.check(store)
    assert report["ok"], report["problems"]  # a recomputation also waits for the sale
    assert set(push(edge, a)) == {"stored"}
    assert unknown_rows(store) == []  # moved to the sale's profile, rollups too
    assert store.pending_refund_rows() == []
    rolled = admin.check(store)
    assert rolled["ok"], rolled["problems"]
    assert tax(store) == {k: v for k, v in ledgers_from_logs([a, b])[0].items() if any(v)}
    # sale and refund cancel out in gross, and the sale is still counted
    assert {k[2]: v[:2] for k, v in tax(store).items()} == {"standard": [1, 0], "reduced": [1, 0]}
    check_intents(any_db, [a, b])


def test_a_booking_handed_over_paid_online_takes_stock_at_the_region(world, region, any_db):
    store, (a, b), edge = world
    booked = {"name": "Ada", "payment": "paid_online", "items": [{"sku": "HONEY", "qty": 2}]}
    kept, _booking, qr = regionlists.add_booking(store, region.key, "demo", booked)
    paid_at_pickup = {
        "name": "Max",
        "payment": "pay_at_pickup",
        "items": [{"sku": "HONEY", "qty": 1}],
    }
    kept, _other, pickup_qr = regionlists.add_booking(store, region.key, "demo", paid_at_pickup)
    with Till.open(a) as till:
        lists.apply_signed(till, kept.data, "bookings")
    admin.stock_set(store, "demo", "HONEY", 2)  # counted: two jars left
    out = run_cli("booking", "redeem", "--data-dir", str(a.root), "--qr", qr, "--json")
    assert out.code == 0 and out.json()["due_minor"] == 0, out.err
    out = run_cli(
        "booking", "redeem", "--data-dir", str(a.root), "--qr", pickup_qr, "--pay", "cash",
        "--json",
    )  # fmt: skip
    assert out.code == 0, out.err
    assert set(push(edge, a)) == {"stored"}
    # two jars left with the paid booking, one with the pickup's sale (not twice)
    assert store.stock_qty("demo", "HONEY") == 2 - 2 - 1
    assert [(f[1], int(f[4])) for f in store.stock_flags()] == [("HONEY", -1)]
    stock = ledgers_from_logs([a])[1]
    assert stock[("demo", "HONEY")] == -3
    assert admin.check(store)["ok"]
    check_intents(any_db, [a, b])


def test_an_older_database_is_upgraded_and_refolded(world, any_db):
    store, (a, b), edge = world
    sale, qr = sell_at(a, [CartLine("MUG-01", 1)])
    refund_receipt_at(b, qr)
    for folder in (a, b):
        push(edge, folder)
    right = tax(store)
    # What the code before sales.receipt_no made of it: no column, the refund at b1
    # under "unknown", nothing pending.
    store.execute("DROP INDEX sales_by_receipt")
    store.execute("ALTER TABLE sales DROP COLUMN receipt_no")
    for (t, profile, rate), values in right.items():
        store.execute(
            "UPDATE tax_ledger SET gross_minor = ?, tax_minor = ?, net_minor = ? "
            "WHERE tenant = ? AND tax_profile = ? AND rate = ?",
            (values[1] + 1200, values[2] + 200, values[3] + 1000, t, profile, rate),
        )
        store.execute(
            "INSERT INTO tax_ledger VALUES (?, 'unknown', ?, 0, -1200, -200, -1000)", (t, rate)
        )
    assert not admin.check(store)["ok"]
    store.close()
    again = Store.open(any_db)  # the upgrade runs once, when it opens
    try:
        assert tax(again) == right
        assert again.sale_profiles_by_receipt("demo", [("a1", sale["receipt_no"])]) == {
            ("a1", sale["receipt_no"]): "eu-market"
        }
        report = admin.check(again)
        assert report["ok"], report["problems"]
        check_intents(any_db, [a, b])
    finally:
        again.close()
    Store.open(any_db).close()  # and only once


def test_a_database_whose_promo_rollup_names_no_promoter_is_refolded(world, any_db):
    store, (a, _b), edge = world
    with Till.open(a) as till:
        catalog = till.catalog().to_json()
        catalog["promotions"].append(
            {"id": "PAT5", "kind": "amount", "value": 100, "code": "PAT5", "promoter": "pat"}
        )
        till.apply_catalog(catalog)
        till.sell([CartLine("MUG-01", 1)], "cash", promo_code="PAT5")
        till.sell([CartLine("MUG-01", 1)], "cash", promo_code="MARKET10")
    push(edge, a)
    right = sorted(store.rollup_rows()["promos"])
    assert {(r[3], r[4]) for r in right} == {("PAT5", "pat"), ("MARKET10", "")}
    # what the code before the promoter column made: one row per code, no owner
    store.execute("DROP TABLE rollup_promos")
    store.execute(
        "CREATE TABLE rollup_promos (tenant TEXT NOT NULL, event_id TEXT NOT NULL, "
        "day TEXT NOT NULL, code TEXT NOT NULL, redemptions BIGINT NOT NULL, "
        "discount_minor BIGINT NOT NULL, PRIMARY KEY (tenant, event_id, day, code))"
    )
    for t, e, d, code, _owner, n, disc in right:
        store.execute("INSERT INTO rollup_promos VALUES (?,?,?,?,?,?)", (t, e, d, code, n, disc))
    store.close()
    again = Store.open(any_db)  # the upgrade runs once, when it opens
    try:
        assert sorted(again.rollup_rows()["promos"]) == right
        report = admin.check(again)
        assert report["ok"], report["problems"]
    finally:
        again.close()
