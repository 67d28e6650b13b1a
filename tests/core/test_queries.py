"""The core's named queries, checked against events the test wrote itself."""

from __future__ import annotations

import sqlite3

from appliance import queries
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
