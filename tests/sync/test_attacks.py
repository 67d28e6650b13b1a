"""Bad input and attacks against a running edge over the real broker and the shipped ACL.

Each one must be rejected, logged, counted in `tillbox edge stats`, never stored,
and must not crash the edge.
"""

from __future__ import annotations

import json

import pytest
from nacl.signing import SigningKey

from appliance.errors import TillError
from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from appliance.formats.chain import GENESIS_HASH
from edge import admin
from edge.broker import ADMIN_USER
from edge.publish import send_bytes
from edge.store import Store
from sync_agent.reader import LogReader
from systest.sync import (
    ADMIN_PASSWORD,
    agent_proc,
    check_exactly_once,
    device_password,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    seal_log,
    sell,
    sign_raw,
    wait_for,
)

pytestmark = pytest.mark.slow
MAX_BYTES = 40_000


def rejected(db: str) -> dict[str, int]:
    store = Store.open(db)
    try:
        return admin.stats(store)["rejected"]
    finally:
        store.close()


def test_attacks_are_rejected_counted_logged_and_never_stored(tmp_path, broker, db_url, region):
    t1, t2, t3 = (make_till(tmp_path, d, region) for d in ("t1", "t2", "t3"))
    for till in (t1, t2, t3):
        sell(till, 8)
    enroll(db_url, t1, t2)  # t3 has broker credentials but was never enrolled
    edge = edge_proc(
        tmp_path,
        db_url,
        broker.url,
        region,
        "tillbox-edge-1",
        "--max-segment-bytes",
        str(MAX_BYTES),
    ).start()
    url = BrokerURL.parse(broker.url)

    def as_admin(topic: str, data: bytes) -> None:
        send_bytes(url, ADMIN_USER, ADMIN_PASSWORD, topic, data)

    def expect(reason: str, count: int = 1) -> None:
        wait_for(lambda: rejected(db_url).get(reason) == count, 15, f"{reason} to be counted")

    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        agent = agent_proc(t1, broker.url, "--once", "--timeout", "30").start()
        assert agent.wait(40) == 0, agent.log()[-2000:]
        honest = seal_log(t1)  # the same bytes the agent sent (deterministic sealing)
        t1_topic = wire.topic_seg("demo", "t1")

        # forged signature: right layout, wrong key
        reader = LogReader(t1.log_path)
        lines = reader.lines(0, 5)
        reader.close()
        forged = wire.seal_segment(
            SigningKey.generate(),
            tenant="demo",
            device="t1",
            first_seq=1,
            last_seq=5,
            prev=GENESIS_HASH,
            lines=lines,
        )
        as_admin(t1_topic, forged)
        expect("bad_signature")

        # a valid segment replayed
        as_admin(t1_topic, honest[0])
        expect("duplicate")

        # a device that is not enrolled, publishing under its own (ACL-permitted) topic
        send_bytes(url, "t3", device_password("t3"), wire.topic_seg("demo", "t3"), seal_log(t3)[0])
        expect("unknown_device")

        # t2 publishing as t1: the broker's ACL refuses it ...
        with pytest.raises(TillError, match="refused the publish"):
            send_bytes(url, "t2", device_password("t2"), t1_topic, seal_log(t2)[0])
        # ... and when something bypasses the ACL, t1's key does not verify t2's signature
        as_admin(t1_topic, seal_log(t2)[0])
        expect("bad_signature", 2)

        # truncated and bit-flipped
        as_admin(t1_topic, honest[-1][:-10])
        expect("bad_signature", 3)
        flipped = bytearray(honest[-1])
        flipped[len(flipped) // 2] ^= 0x40
        as_admin(t1_topic, bytes(flipped))
        expect("bad_signature", 4)

        # over the size limit (never even hashed)
        as_admin(t1_topic, b"TBSG\x01" + bytes(MAX_BYTES))
        expect("oversize")

        # malformed JSON inside a validly signed segment
        last = admin.stored_events(Store.open(db_url), "t1")[-1]
        as_admin(
            t1_topic,
            sign_raw(
                t1,
                [b'{"seq":' + str(last[0] + 1).encode() + b",]"],
                last[0] + 1,
                wire.segment_id(honest[-1]),
            ),
        )
        expect("malformed")

        stats = check_exactly_once(db_url, [t1])  # nothing of the above was stored
        assert stats["rejected"] == {
            "bad_signature": 4,
            "duplicate": 1,
            "unknown_device": 1,
            "oversize": 1,
            "malformed": 1,
        }
        assert [d["device_id"] for d in stats["devices"]] == ["t1", "t2"]
        assert stats["devices"][1]["events_stored"] == 0
        assert edge.alive()
        log = edge.log()
        for reason in ("bad_signature", "duplicate", "unknown_device", "oversize", "malformed"):
            assert f"reason={reason}" in log
    finally:
        edge.stop()
    assert edge.proc.returncode == 0


def test_edge_stats_cli_reports_rejections(tmp_path, db_url, region):
    import subprocess

    from systest.sync import TILLBOX

    till = make_till(tmp_path, "t1", region)
    enroll(db_url, till)
    store = Store.open(db_url)
    store.count_rejection("", "unknown_device")
    store.count_rejection("t1", "bad_signature")
    store.close()
    out = subprocess.run(
        [TILLBOX, "edge", "stats", "--db", db_url, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    info = json.loads(out.stdout)
    assert info["rejected"] == {"bad_signature": 1, "unknown_device": 1}
    (device,) = info["devices"]
    assert {
        k: device[k]
        for k in (
            "device_id",
            "events_stored",
            "last_seq",
            "segments_rejected",
            "duplicates_dropped",
        )
    } == {
        "device_id": "t1",
        "events_stored": 0,
        "last_seq": 0,
        "segments_rejected": 1,
        "duplicates_dropped": 0,
    }
    text = subprocess.run(
        [TILLBOX, "edge", "stats", "--db", db_url], capture_output=True, text=True, timeout=30
    ).stdout
    assert "rejected unknown_device: 1" in text
