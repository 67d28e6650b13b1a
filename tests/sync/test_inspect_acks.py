"""End to end: a till syncs over a real mosquitto, and its inspection bundle proves it."""

from __future__ import annotations

import json
import zipfile

import pytest

from appliance.formats import wire
from sync_agent.store import AgentStore
from systest.sync import (
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    read_state,
    run_tillbox,
    sell,
    sync_once,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_bundle_carries_the_regions_signed_acks_of_a_real_sync(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region)
    last = sell(till, 60)  # more than segment_max_events: several segments, several acks
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        done = sync_once(till, broker.url, 40)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        edge.stop()
    assert read_state(till)["acked_seq"] == last
    store = AgentStore(till.sync_dir / "agent.db")
    try:
        rows = store.conn.execute("SELECT id, last_seq, ack FROM segments ORDER BY first_seq")
        kept = {seg_id: (seq, bytes(ack)) for seg_id, seq, ack in rows if ack is not None}
    finally:
        store.close()
    assert kept and max(seq for seq, _ack in kept.values()) == last
    for seg_id, (seq, ack) in kept.items():  # what the agent kept is the region's signed word
        opened = wire.open_ack(ack, region.key.verify_key)
        assert (opened.segment, opened.last_seq, opened.status) == (seg_id, seq, "ack")

    out = tmp_path / "bundle.zip"
    export = run_tillbox("inspect", "export", "--data-dir", str(till.root), "--out", str(out))
    assert export.returncode == 0, export.stderr
    with zipfile.ZipFile(out) as zf:
        for seg_id, (_seq, ack) in kept.items():
            assert zf.read(f"sync/acks/{seg_id}.tbak") == ack
        assert zf.read("sync/region.pub").decode().strip() == region.pub_hex
    verify = run_tillbox(
        "inspect", "verify", str(out), "--region-key", str(region.pub_path), "--json"
    )
    verdict = json.loads(verify.stdout)
    assert verify.returncode == 0 and verdict["ok"], verdict["problem"]
    assert (verdict["acks"], verdict["acked_seq"]) == (len(kept), last)
    text = run_tillbox("inspect", "verify", str(out), "--region-key", region.pub_hex).stdout
    assert f"region acks: proved with the pinned region key: stored through seq {last}" in text
