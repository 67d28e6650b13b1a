"""Edge ingest without a broker: chain rules, dedup, ledgers, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from appliance.canonical import canonical_bytes
from appliance.pricing import CartLine
from appliance.till import Till
from edge import admin
from edge.ingest import Ingestor
from edge.store import Store
from sync_agent import wire
from sync_agent.testing import (
    check_exactly_once,
    enroll,
    make_till,
    seal_log,
    sell,
    sign_raw,
)


def topic(device: str, tenant: str = "demo") -> str:
    return wire.topic_seg(tenant, device)


@pytest.fixture
def edge(any_db, region):
    store = Store.open(any_db)
    yield Ingestor(store, region.key)
    store.close()


def test_in_order_segments_are_stored_once_and_acked(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 40)
    enroll(any_db, till)
    segments = seal_log(till, size=25)
    assert len(segments) >= 2
    for data in segments:
        out = edge.handle(topic("t1"), data)
        assert out.status == "stored", out
        ack = wire.open_ack(out.ack, region.key.verify_key)
        assert (ack.status, ack.segment) == ("ack", wire.segment_id(data))
        assert out.ack_topic == wire.topic_ack("demo", "t1")
    stats = check_exactly_once(any_db, [till])
    assert stats["devices"][0]["segments_stored"] == len(segments)


def test_replay_is_dropped_and_reacked(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 10)
    enroll(any_db, till)
    (data,) = seal_log(till, size=100)
    assert edge.handle(topic("t1"), data).status == "stored"
    again = edge.handle(topic("t1"), data)
    assert again.status == "duplicate"
    ack = wire.open_ack(again.ack, region.key.verify_key)
    assert (ack.status, ack.reason) == ("ack", "duplicate")
    stats = check_exactly_once(any_db, [till])
    device = stats["devices"][0]
    assert device["duplicates_dropped"] == ack.last_seq
    assert stats["rejected"] == {"duplicate": 1}


def test_gap_gets_a_signed_nack_naming_where_to_resend(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 30)
    enroll(any_db, till)
    first, second, third, *_ = seal_log(till, size=10)
    assert edge.handle(topic("t1"), first).status == "stored"
    out = edge.handle(topic("t1"), third)
    assert out.status == "nack"
    nack = wire.open_ack(out.ack, region.key.verify_key)
    assert (nack.status, nack.reason, nack.resend_from) == ("nack", "gap", 11)
    assert nack.tip == wire.segment_id(first)
    assert edge.handle(topic("t1"), second).status == "stored"
    assert edge.handle(topic("t1"), third).status == "stored"
    store = Store.open(any_db)
    try:
        assert [s for s, _h in admin.stored_events(store, "t1")] == list(range(1, 31))
        assert admin.stats(store)["rejected"] == {"gap": 1}
    finally:
        store.close()


def test_same_idempotency_key_on_two_tills_counts_once(tmp_path, any_db, edge, region):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    sell(t1, 3, refund_every=0)
    sell(t1, 1, refund_every=0, idempotency_key="shared-key")
    sell(t2, 1, refund_every=0, idempotency_key="shared-key")
    enroll(any_db, t1, t2)
    for till, device in ((t1, "t1"), (t2, "t2")):
        for data in seal_log(till):
            assert edge.handle(topic(device), data).status == "stored"
    store = Store.open(any_db)
    try:
        report = admin.check(store)
        assert report["ok"], report["problems"]
        assert report["duplicates"] == 1 and report["sales"] == 4
        stats = admin.stats(store)
        dups = {d["device_id"]: d["duplicates_dropped"] for d in stats["devices"]}
        assert dups == {"t1": 0, "t2": 1}
        # both events are stored (the chain must stay whole), the sale is counted once
        assert store.one("SELECT COUNT(*) FROM events WHERE dup_of = 'shared-key'")[0] == 1
    finally:
        store.close()


def test_two_tills_selling_the_last_one_offline_is_flagged_not_rejected(
    tmp_path, any_db, edge, region
):
    t1, t2 = make_till(tmp_path, "t1", region), make_till(tmp_path, "t2", region)
    for till in (t1, t2):
        with Till.open(till) as t:
            t.sell([CartLine("BOARD-ENG", 1)], "cash")
    enroll(any_db, t1, t2)
    store = Store.open(any_db)
    admin.stock_set(store, "demo", "BOARD-ENG", 1)
    for till, device in ((t1, "t1"), (t2, "t2")):
        for data in seal_log(till):
            assert edge.handle(topic(device), data).status == "stored"
    try:
        assert store.one("SELECT qty FROM stock WHERE sku = 'BOARD-ENG'")[0] == -1
        flags = admin.stats(store)["stock_flags"]
        assert [(f["sku"], f["device_id"], f["qty_after"]) for f in flags] == [
            ("BOARD-ENG", "t2", -1)
        ]
        assert admin.check(store)["ok"]
    finally:
        store.close()


def test_unknown_device_counts_under_rejected_only(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t9", region)
    (data,) = seal_log(till)
    out = edge.handle(topic("t9"), data)
    assert (out.status, out.reason, out.ack) == ("rejected", "unknown_device", None)
    store = Store.open(any_db)
    try:
        stats = admin.stats(store)
        assert stats == {"devices": [], "rejected": {"unknown_device": 1}, "stock_flags": []}
        assert store.one("SELECT COUNT(*) FROM events")[0] == 0
    finally:
        store.close()


def test_validly_signed_but_bad_contents_is_rejected_and_nothing_stored(
    tmp_path, any_db, edge, region
):
    till = make_till(tmp_path, "t1", region)
    sell(till, 3)
    enroll(any_db, till)
    bad_json = sign_raw(till, [b'{"seq": 1, "oops"'], 1, wire.GENESIS)
    lines = seal_log(till)
    _h, raw = wire.open_segment(lines[0], till_key(till))
    events = [json.loads(x) for x in raw.split(b"\n")[:-1]]
    events[1]["payload"]["tampered"] = True  # hash no longer matches
    tampered = sign_raw(
        till,
        [canonical_bytes(e) for e in events],
        1,
        wire.GENESIS,
    )
    wrong_device = sign_raw(till, [raw.split(b"\n")[0]], 1, wire.GENESIS, device="t2")
    outcomes = [edge.handle(topic("t1"), d) for d in (bad_json, tampered, wrong_device)]
    assert [(o.status, o.reason) for o in outcomes] == [
        ("rejected", "malformed"),
        ("rejected", "bad_event"),
        ("rejected", "device_mismatch"),
    ]
    # the device signed what the region refuses: it is told so (signed), not left guessing
    nacks = [wire.open_ack(o.ack, region.key.verify_key) for o in outcomes[:2]]
    assert [(n.status, n.reason, n.resend_from) for n in nacks] == [
        ("nack", "rejected:malformed", 0),
        ("nack", "rejected:bad_event", 0),
    ]
    assert outcomes[2].ack is None  # names another device: no answer
    store = Store.open(any_db)
    try:
        assert store.one("SELECT COUNT(*) FROM events")[0] == 0
        stats = admin.stats(store)
        assert stats["devices"][0]["segments_rejected"] == 3
        assert stats["rejected"] == {"malformed": 1, "bad_event": 1, "device_mismatch": 1}
    finally:
        store.close()
    # and the genuine segment is still accepted afterwards
    assert edge.handle(topic("t1"), lines[0]).status == "stored"


def till_key(folder):
    from appliance.keys import load_verify_key

    return load_verify_key(folder.public_key_path)


def test_a_device_cannot_write_into_another_tenant(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t1", region, tenant="acme")
    sell(till, 2)
    enroll(any_db, till)
    (data,) = seal_log(till, tenant="acme")
    out = edge.handle(topic("t1", tenant="other"), data)
    assert (out.status, out.reason, out.ack) == ("rejected", "wrong_tenant", None)
    assert edge.handle(topic("t1", tenant="acme"), data).status == "stored"
    check_exactly_once(any_db, [till])
