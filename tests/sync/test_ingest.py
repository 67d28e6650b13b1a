"""Edge ingest without a broker: chain rules, dedup, ledgers, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from appliance.formats import wire
from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import GENESIS_HASH
from appliance.pricing import CartLine
from appliance.till import Till
from edge import admin
from edge.ingest import Ingestor
from edge.store import Store
from systest.sync import (
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
    bad_json = sign_raw(till, [b'{"seq": 1, "oops"'], 1, GENESIS_HASH)
    lines = seal_log(till)
    _h, raw = wire.open_segment(lines[0], till_key(till))
    events = [json.loads(x) for x in raw.split(b"\n")[:-1]]
    events[1]["payload"]["tampered"] = True  # hash no longer matches
    tampered = sign_raw(
        till,
        [canonical_bytes(e) for e in events],
        1,
        GENESIS_HASH,
    )
    wrong_device = sign_raw(till, [raw.split(b"\n")[0]], 1, GENESIS_HASH, device="t2")
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


# -- issue 11, finding 4: every line canonical; a signed segment never wedges the edge -----
def _line(obj: dict) -> bytes:
    """Sorted, compact JSON of ``obj`` with the stdlib (not tillbox's encoder)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _rehash(text: str) -> bytes:
    """Give ``text`` (an export line's JSON *without* its "hash" member, spelled as it is)
    the hash the cut rule computes, and splice the member in before "id"."""
    import hashlib

    digest = hashlib.sha256(text.encode()).hexdigest()
    cut = text.index(',"id":')
    return (text[:cut] + f',"hash":"{digest}"' + text[cut:]).encode()


def _first_sale(till) -> tuple[int, dict, bytes]:
    """(seq, export object without hash, the honest line) of the till's first sale."""
    from sync_agent.reader import LogReader

    reader = LogReader(till.log_path)
    try:
        lines = reader.lines(0, 1000)
    finally:
        reader.close()
    for line in lines:
        obj = json.loads(line)
        if obj["type"] == "sale.completed":
            obj.pop("hash")
            return obj["seq"], obj, lines
    raise AssertionError("no sale")


def _bad_spellings(env: dict) -> dict[str, bytes]:
    """Lines the old cut rule hashed and stored, each not the canonical form of its value."""
    canon = _line(env)
    seq = env["seq"]
    return {
        "duplicate key": _rehash(canon[:-1].decode() + f',"seq":{seq}}}'),
        "seq as a float": _rehash(canon.decode().replace(f'"seq":{seq},', f'"seq":{seq}.0,')),
        "space after colons": _rehash(canon.decode().replace('":', '": ')),
    }


@pytest.mark.parametrize("case", ["duplicate key", "seq as a float", "space after colons"])
def test_a_line_not_in_canonical_form_is_refused_with_a_signed_nack(
    tmp_path, any_db, edge, region, case
):
    till = make_till(tmp_path, "t1", region)
    sell(till, 3, refund_every=0)
    enroll(any_db, till)
    seq, env, lines = _first_sale(till)
    bad = _bad_spellings(env)[case]
    assert json.loads(bad)["seq"] == seq  # the same value, spelled differently
    prefix = lines[: seq - 1]
    data = sign_raw(till, [*prefix, bad], 1, GENESIS_HASH)
    out = edge.handle(topic("t1"), data, "ab" * 16)
    assert (out.status, out.reason) == ("rejected", "non_canonical"), case
    nack = wire.open_ack(out.ack, region.key.verify_key)
    assert (nack.status, nack.reason, nack.resend_from) == ("nack", "rejected:non_canonical", 0)
    assert (nack.segment, nack.nonce) == (wire.segment_id(data), "ab" * 16)
    store = Store.open(any_db)
    try:
        assert store.one("SELECT COUNT(*) FROM events")[0] == 0
        assert admin.stats(store)["rejected"] == {"non_canonical": 1}
    finally:
        store.close()
    assert edge.handle(topic("t1"), seal_log(till, size=1000)[0]).status == "stored"


def test_a_quantity_beyond_2_pow_53_is_refused_not_retried_forever(tmp_path, any_db, edge, region):
    """The edge used to raise OverflowError in the insert, log "will be resent" and never
    answer: the till resent the same segment forever."""
    till = make_till(tmp_path, "t1", region)
    sell(till, 2, refund_every=0)
    enroll(any_db, till)
    seq, env, lines = _first_sale(till)
    env["payload"]["lines"][0]["qty"] = 2**64 - 1
    bad = _rehash(_line(env).decode())
    out = edge.handle(topic("t1"), sign_raw(till, [*lines[: seq - 1], bad], 1, GENESIS_HASH))
    assert (out.status, out.reason) == ("rejected", "non_canonical")
    nack = wire.open_ack(out.ack, region.key.verify_key)
    assert nack.reason == "rejected:non_canonical" and nack.nonce == ""
    store = Store.open(any_db)
    try:
        assert store.one("SELECT COUNT(*) FROM events")[0] == 0
        assert store.one("SELECT COUNT(*) FROM stock")[0] == 0
        assert admin.stats(store)["rejected"] == {"non_canonical": 1}
    finally:
        store.close()


def _overflowing_sale(till) -> tuple[bytes, list[bytes]]:
    """A canonical sale whose 1025 lines of 2**53-1 of one SKU sum past a 64-bit column:
    every number is in range, but the stock ledger cannot hold the total."""
    seq, env, lines = _first_sale(till)
    line = dict(env["payload"]["lines"][0], qty=2**53 - 1)
    env["payload"]["lines"] = [line] * 1025
    return _rehash(_line(env).decode()), lines[: seq - 1]


def test_a_segment_the_database_cannot_hold_is_refused_rolled_back_and_counted(
    tmp_path, any_db, edge, region
):
    till = make_till(tmp_path, "t1", region)
    sell(till, 2, refund_every=0)
    enroll(any_db, till)
    bad, prefix = _overflowing_sale(till)
    data = sign_raw(till, [*prefix, bad], 1, GENESIS_HASH)
    out = edge.handle(topic("t1"), data, "cd" * 16)
    assert (out.status, out.reason) == ("rejected", "unstorable")
    nack = wire.open_ack(out.ack, region.key.verify_key)
    assert (nack.status, nack.reason, nack.nonce) == ("nack", "rejected:unstorable", "cd" * 16)
    assert (nack.stored_seq, nack.tip) == (0, GENESIS_HASH)
    store = Store.open(any_db)
    try:  # the transaction rolled back: not one of its rows is left
        for table in ("events", "segments", "sales", "stock", "tax_ledger"):
            assert store.one(f"SELECT COUNT(*) FROM {table}")[0] == 0, table
        assert admin.stats(store)["rejected"] == {"unstorable": 1}
    finally:
        store.close()
    assert edge.handle(topic("t1"), seal_log(till, size=1000)[0]).status == "stored"


def test_a_locked_database_is_retried_later_not_refused(tmp_path, any_db, edge, region):
    """Transient: no answer (the agent resends), nothing counted, nothing stored."""
    from edge.ingest import StoreUnavailable

    till = make_till(tmp_path, "t1", region)
    sell(till, 3)
    enroll(any_db, till)
    (data,) = seal_log(till, size=1000)
    holder = Store.open(any_db)
    try:
        if holder.dialect == "sqlite":
            edge.store.execute("PRAGMA busy_timeout = 50")
            holder.execute("BEGIN IMMEDIATE")
        else:
            edge.store.execute("SET lock_timeout = '50ms'")
            holder.conn.autocommit = False
            holder.execute("SELECT 1 FROM devices WHERE device_id = 't1' FOR UPDATE")
        with pytest.raises(StoreUnavailable):
            edge.handle(topic("t1"), data)
    finally:
        holder.conn.rollback() if holder.dialect == "postgres" else holder.execute("ROLLBACK")
        holder.close()
    store = Store.open(any_db)
    try:
        assert admin.stats(store)["rejected"] == {}
        assert store.one("SELECT COUNT(*) FROM events")[0] == 0
    finally:
        store.close()
    assert edge.handle(topic("t1"), data).status == "stored"


# -- issue 11, finding 9: every answer names the publish it answers -----------------------
def test_answers_echo_the_publishs_nonce_and_unbound_ones_stay_v1(tmp_path, any_db, edge, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 20)
    enroll(any_db, till)
    first, second, *_ = seal_log(till, size=10)
    stored = edge.handle(topic("t1"), first, "01" * 16)
    gap = edge.handle(topic("t1"), seal_log(till, size=10)[2], "02" * 16)
    again = edge.handle(topic("t1"), first, "03" * 16)
    legacy = edge.handle(topic("t1"), second)  # an agent from before ack binding
    opened = [wire.open_ack(o.ack, region.key.verify_key) for o in (stored, gap, again, legacy)]
    assert [(a.status, a.reason, a.nonce) for a in opened] == [
        ("ack", "", "01" * 16),
        ("nack", "gap", "02" * 16),
        ("ack", "duplicate", "03" * 16),
        ("ack", "", ""),
    ]
    assert [o.ack[4] for o in (stored, gap, again, legacy)] == [2, 2, 2, 1]
