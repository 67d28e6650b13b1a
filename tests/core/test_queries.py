"""The core's named queries, checked against events the test wrote itself."""

from __future__ import annotations

import json
import sqlite3

from appliance import projections, queries
from appliance.pricing import CartLine


def test_event_queries_answer_from_the_log(till):
    genesis = till.log.event(1)
    a = till.record("consent.recorded", {"customer": "c-1", "n": 1})
    till.record("consent.recorded", {"customer": "c-2", "n": 2})
    c = till.record("consent.erased", {"customer": "c-1"})
    till.record("consent.recorded", {"customer": "c-1", "n": 3})
    assert queries.count_events(till.log, "consent.recorded") == 3
    assert queries.count_events(till.log, "no.such") == 0
    assert queries.latest_payload(till.log, "consent.recorded") == {"customer": "c-1", "n": 3}
    assert queries.latest_payload(till.log, "no.such") is None
    assert queries.genesis_payload(till.log) == genesis.payload
    assert queries.event_hash(till.log, a.seq) == a.hash
    assert queries.event_hash(till.log, 10_000) is None
    assert queries.customers(till.log, "consent.recorded") == ["c-1", "c-2"]  # first seen first
    about_c1 = list(
        queries.customer_events(till.log, ("consent.recorded", "consent.erased"), "c-1")
    )
    assert [(seq, type_) for seq, type_, _ in about_c1] == [
        (a.seq, "consent.recorded"),
        (c.seq, "consent.erased"),
        (c.seq + 1, "consent.recorded"),
    ]


def test_wall_clock_and_refund_queries(till):
    sale = till.sell([CartLine("POSTCARD", 2)], "cash")
    refund = till.refund(sale.payload["sale_id"], [("POSTCARD", 1)]).event
    events = list(till.log.events())
    walls = [e.wall_ms for e in events]
    assert queries.last_wall_ms(till.log) == max(walls)
    assert queries.first_seq_from(till.log, walls[0]) == 1
    assert queries.first_seq_from(till.log, max(walls) + 1) is None
    assert queries.last_seq_before(till.log, walls[0]) is None
    assert queries.last_seq_before(till.log, max(walls) + 1) == events[-1].seq
    assert queries.refund_seq(till.log, refund.payload["receipt_no"]) == refund.seq
    assert queries.refund_seq(till.log, sale.payload["receipt_no"]) is None  # a sale, not a refund
    assert queries.refund_seq(till.log, None) is None


def test_agent_segments_read_an_old_agent_db_without_the_ack_column(tmp_path):
    db = tmp_path / "agent.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE segments (first_seq INTEGER, last_seq INTEGER, id TEXT, prev TEXT, "
        "size INTEGER, sealed_ms INTEGER, acked_ms INTEGER, data BLOB)"
    )
    conn.execute("INSERT INTO segments VALUES (4, 6, 'b', 'a', 20, 2, NULL, x'02')")
    conn.execute("INSERT INTO segments VALUES (1, 3, 'a', 'g', 10, 1, 5, x'01')")
    conn.commit()
    conn.close()
    rows = queries.agent_segments(db)
    assert [(r.first_seq, r.id, r.acked_ms, r.data, r.ack) for r in rows] == [
        (1, "a", 5, b"\x01", None),
        (4, "b", None, b"\x02", None),
    ]


def test_the_tills_reads_answer_from_the_events_it_wrote(till):
    catalog_event = next(e for e in till.log.events() if e.type == "catalog.applied")
    assert queries.catalog_version(till.log) == str(catalog_event.seq)
    body = json.loads(queries.catalog_body(till.log))
    assert [i["sku"] for i in body["items"]] == [i["sku"] for i in catalog_event.payload["items"]]
    stocked = {
        i["sku"]: i.get("initial_stock", 0)
        for i in catalog_event.payload["items"]
        if i.get("track_stock", True)
    }
    assert queries.stock(till.log) == stocked

    cash = till.sell([CartLine("POSTCARD", 3)], "cash").event
    card = till.sell([CartLine("POSTCARD", 1)], "card").event
    assert queries.stock(till.log)["POSTCARD"] == stocked["POSTCARD"] - 4
    assert "CAFE" not in queries.stock(till.log)  # not stock-tracked
    for sale in (cash, card):
        assert queries.sale_seq_by_receipt(till.log, sale.payload["receipt_no"]) == sale.seq
        assert queries.sale_seq_by_id(till.log, sale.payload["sale_id"]) == sale.seq
    assert queries.sale_seq_by_receipt(till.log, 999) is None
    assert queries.sale_seq_by_id(till.log, "no-such-sale") is None
    card_due = card.payload["payment"]["due_minor"]
    assert queries.card_total_after(till.log, 0) == card_due
    assert queries.card_total_after(till.log, card.seq) == 0

    till.record("receipt.failed", {"receipt_no": card.payload["receipt_no"], "reason": "x"})
    till.record("receipt.failed", {"receipt_no": cash.payload["receipt_no"], "reason": "x"})
    till.record("receipt.printed", {"receipt_no": card.payload["receipt_no"]})
    assert queries.failed_receipts(till.log) == [cash.payload["receipt_no"]]


def test_shift_queries_follow_the_shift_events(till):
    assert queries.open_shift_no(till.log) == 1
    assert queries.opening_float_minor(till.log, 1) == 0
    sale = till.sell([CartLine("POSTCARD", 2)], "cash").event
    rows = queries.shift_totals(till.log, 1)
    pay = [r for r in rows if r[0] == "pay"]
    assert pay == [("pay", "cash", 1, sale.payload["payment"]["due_minor"], 0, 0)]
    assert [r[:2] for r in rows] == sorted(r[:2] for r in rows)  # by kind, then key
    assert queries.shift_totals(till.log, 2) == []
    till.close_shift()
    assert queries.open_shift_no(till.log) is None
    assert projections.last_shift_no(till.log.conn) == 1
    till.open_shift(5000)
    assert queries.open_shift_no(till.log) == 2
    assert queries.opening_float_minor(till.log, 2) == 5000
    assert queries.opening_float_minor(till.log, 7) == 0  # no such shift


def test_the_transaction_reads_answer_from_the_projections(till):
    conn = till.log.conn
    assert projections.last_receipt_no(conn) is None
    assert projections.sale_context(conn, "k-1") == (None, 1, 0, queries.catalog_version(till.log))
    sale = till.sell([CartLine("POSTCARD", 2), CartLine("CAFE", 1)], "cash", idempotency_key="k-1")
    refund = till.refund(sale.payload["sale_id"], [("POSTCARD", 1)]).event
    assert projections.last_receipt_no(conn) == refund.payload["receipt_no"]
    seen, shift, last, _version = projections.sale_context(conn, "k-1")
    assert (seen, shift, last) == (sale.event.seq, 1, refund.payload["receipt_no"])
    lines = projections.sale_lines(conn, sale.payload["receipt_no"])
    assert [(ln[1], ln[2], ln[3]) for ln in lines] == [("POSTCARD", 2, 1), ("CAFE", 1, 0)]
    assert projections.sale_lines(conn, 999) == []

    assert projections.selftest_gate_rows(conn) == []
    checks = [
        {"name": "printer", "result": "fail", "fatal": True, "value": "offline", "fix": "plug in"},
        {"name": "disk", "result": "pass", "fatal": False, "value": "ok"},
    ]
    first = till.record_selftest({"verdict": "fail", "trigger": "cli", "checks": checks}).seq
    assert projections.selftest_gate_rows(conn) == [
        ("disk", first, "pass", 0, "ok", "", 0),
        ("printer", first, "fail", 1, "offline", "plug in", 0),
    ]
