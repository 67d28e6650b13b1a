"""Issue 11 over the real broker with the shipped ACL: answers bound to their publish
(finding 9) and a signed segment the region cannot store (finding 4).

A recorder (the test broker's admin user, which may read and write anything) keeps
every signed answer the edge sent to the till; the test then replays old ones on the
till's ack topic, as anyone able to publish there could.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
import time

import pytest
import tomli_w

from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from edge import admin
from edge.broker import ADMIN_USER
from edge.publish import send_bytes
from edge.store import Store
from mqttio.client import make_client
from systest.sync import (
    ADMIN_PASSWORD,
    agent_proc,
    check_exactly_once,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    read_state,
    sell,
    sync_once,
    till_events,
    wait_for,
)

pytestmark = pytest.mark.slow


class AckRecorder:
    """Every message on one device's ack topic, as the edge published it."""

    def __init__(self, broker_url: str, device: str) -> None:
        self.url = BrokerURL.parse(broker_url)
        self.topic = wire.topic_ack("demo", device)
        self.messages: list[bytes] = []
        self.subscribed = threading.Event()
        self.client = make_client(
            f"ack-recorder-{time.time_ns()}", username=ADMIN_USER, password=ADMIN_PASSWORD
        )
        self.client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.append(bytes(msg.payload))

    def __enter__(self) -> AckRecorder:
        self.client.connect(self.url.host, self.url.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the recorder could not subscribe"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def answers(self, region, status: str) -> list[bytes]:
        key = region.key.verify_key
        return [m for m in self.messages if wire.open_ack(m, key).status == status]


def rejected(db: str) -> dict[str, int]:
    store = Store.open(db)
    try:
        return admin.stats(store)["rejected"]
    finally:
        store.close()


def replay(broker_url: str, device: str, data: bytes) -> None:
    url = BrokerURL.parse(broker_url)
    send_bytes(url, ADMIN_USER, ADMIN_PASSWORD, wire.topic_ack("demo", device), data)


def sending(folder) -> bool:
    """The agent is online with events queued (published, waiting for an answer)."""
    try:
        state = read_state(folder)
    except (OSError, ValueError):
        return False
    return state["online"] and state["queued_events"] > 0


def test_a_replayed_old_nack_does_not_move_the_agent_back(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region, segment_max_events=20)
    sell(till, 10)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        with AckRecorder(broker.url, "t1") as recorder:
            wait_for(lambda: edge_ready(edge), 20, "the edge")
            assert sync_once(till, broker.url, 30).returncode == 0
            # lost agent state and another segment size: a real NACK (overlap) to a real
            # publish of the agent, naming the region's tip at that time
            shutil.rmtree(till.sync_dir)
            config = till.load_config()
            config.update("sync", segment_max_events=7)
            till.config_path.write_text(tomli_w.dumps(config.data))
            assert sync_once(till, broker.url, 30).returncode == 0
            wait_for(lambda: recorder.answers(region, "nack"), 10, "the recorder to see it")
            old_nack = recorder.answers(region, "nack")[0]
            sell(till, 5)
            done = sync_once(till, broker.url, 30)
            assert done.returncode == 0, done.stderr[-3000:] + edge.log()[-3000:]  # tip moved on
        edge.stop()
        acked = read_state(till)["acked_seq"]
        overlaps = rejected(db_url).get("overlap", 0)
        sell(till, 3)
        agent = agent_proc(till, broker.url, "--timeout", "60").start()
        try:
            wait_for(lambda: sending(till), 20, "the agent to send (the edge is down)")
            replay(broker.url, "t1", old_nack)
            wait_for(
                lambda: "ack ignored" in agent.log() or "rebasing" in agent.log(),
                15,
                "the agent to handle the replayed NACK",
            )
            time.sleep(1.0)  # state.json is rewritten twice a second
            assert "rebasing" not in agent.log()  # the old agent jumped back to the old tip
            assert read_state(till)["acked_seq"] == acked
            edge = edge_proc(tmp_path, db_url, broker.url, region).start()
            wait_for(lambda: read_state(till)["queued_events"] == 0, 40, "the agent to drain")
        finally:
            agent.stop()
    finally:
        edge.stop()
    stats = check_exactly_once(db_url, [till])
    assert stats["rejected"].get("overlap") == overlaps  # no detour via the old tip


def test_a_replayed_old_ack_does_not_mark_lost_events_synced(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 10)
    enroll(db_url, till)
    edge_db = tmp_path / "edge.db"
    backup = tmp_path / "edge-backup.db"
    shutil.copy(edge_db, backup)  # the region's nightly backup, before the sales arrived
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        with AckRecorder(broker.url, "t1") as recorder:
            wait_for(lambda: edge_ready(edge), 20, "the edge")
            assert sync_once(till, broker.url, 30).returncode == 0
            wait_for(lambda: recorder.answers(region, "ack"), 10, "the recorder to see the ack")
            old_acks = recorder.answers(region, "ack")
        edge.stop()
        # the region restores last night's backup, the till's sync folder is lost: the
        # agent seals the very same segment (same bytes, same id) and sends it again
        for suffix in ("", "-wal", "-shm"):
            edge_db.with_name(edge_db.name + suffix).unlink(missing_ok=True)
        shutil.copy(backup, edge_db)
        shutil.rmtree(till.sync_dir)
        agent = agent_proc(till, broker.url, "--timeout", "60").start()
        try:
            wait_for(lambda: sending(till), 20, "the agent to send (the edge is down)")
            for data in old_acks:
                replay(broker.url, "t1", data)
            wait_for(
                lambda: (
                    agent.log().count("ack ignored") >= len(old_acks)
                    or read_state(till)["acked_seq"] > 0
                ),
                15,
                "the agent to handle the replayed acks",
            )
            time.sleep(1.0)
            # the old agent counted these events synced though the region holds none
            assert read_state(till)["acked_seq"] == 0
            edge = edge_proc(tmp_path, db_url, broker.url, region).start()
            wait_for(lambda: read_state(till)["queued_events"] == 0, 40, "the agent to drain")
        finally:
            agent.stop()
    finally:
        edge.stop()
    check_exactly_once(db_url, [till])


def _append_raw_event(folder, payload_text: str) -> int:
    """Append a sale to log.db as a writer bug would: the payload text as given, and the
    hash computed the way the cut rule checks it (over the line without its hash)."""
    conn = sqlite3.connect(folder.log_path)
    try:
        row = conn.execute(
            "SELECT seq, device_id, boot_id, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq, device, boot, prev = row[0] + 1, row[1], row[2], row[3]
        event_id, wall_ms, mono_us = f"00000000-0000-7000-8000-{seq:012d}", 1767225600000, 1
        body = (
            f'{{"boot":"{boot}","device":"{device}","id":"{event_id}","mono_us":{mono_us},'
            f'"payload":{payload_text},"prev":"{prev}","seq":{seq},"type":"sale.completed",'
            f'"v":1,"wall_ms":{wall_ms}}}'
        )
        digest = hashlib.sha256(body.encode()).hexdigest()
        with conn:
            conn.execute(
                "INSERT INTO events (seq, event_id, device_id, type, payload, wall_ms, boot_id,"
                " mono_us, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    seq,
                    event_id,
                    device,
                    "sale.completed",
                    payload_text,
                    wall_ms,
                    boot,
                    mono_us,
                    prev,
                    digest,
                ),
            )
        return seq
    finally:
        conn.close()


def test_a_segment_the_region_refuses_stops_the_agent_instead_of_resending_forever(
    tmp_path, broker, db_url, region
):
    till = make_till(tmp_path, "t1", region, segment_max_events=10, ack_timeout_s=1.0)
    sell(till, 12, refund_every=0)
    sale = json.loads(
        sqlite3.connect(till.log_path)
        .execute("SELECT payload FROM events WHERE type = 'sale.completed' LIMIT 1")
        .fetchone()[0]
    )
    sale["lines"][0]["qty"] = 2**64 - 1  # OverflowError in the old edge's insert
    bad = _append_raw_event(till, json.dumps(sale, sort_keys=True, separators=(",", ":")))
    first = (bad - 1) // 10 * 10 + 1  # the refused segment's first seq
    assert first > 1
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge")
        done = sync_once(till, broker.url, 20)
        assert done.returncode == 1
        last_line = done.stderr.splitlines()[-1]
        assert last_line.startswith(f"tillbox: error: the region refuses events {first}-{bad} ")
        assert "rejected:non_canonical" in last_line and "technician" in last_line
        state = read_state(till)
        assert state["acked_seq"] == first - 1  # everything before it is synced
        assert "error: the region refuses" in state["detail"]
        # running on, the agent does not resend it on every ack timeout (1 s here)
        agent = agent_proc(till, broker.url, "--timeout", "5").start()
        assert agent.wait(30) == 1  # --timeout without --once: ran, stopped, not drained
        assert "not resending it" in agent.log()
    finally:
        edge.stop()
    store = Store.open(db_url)
    try:
        assert admin.stored_events(store, "t1")[-1][0] == first - 1
        assert admin.stats(store)["rejected"] == {"non_canonical": 2}  # once per agent start
    finally:
        store.close()


def test_a_till_the_region_does_not_know_yet_syncs_once_enrolled_without_a_restart(
    tmp_path, broker, db_url, region
):
    """The technician enrols the till at the region after its first boot. Until then the
    edge cannot check the till's signature, so it answers nothing (no NACK an unverified
    sender could steer by); the agent resends on its ack timeout and drains once enrolled,
    with no restart at the stall."""
    till = make_till(tmp_path, "t1", region, segment_max_events=10, ack_timeout_s=1.0)
    sell(till, 12, refund_every=0)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    agent = None
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge")
        agent = agent_proc(till, broker.url).start()
        wait_for(lambda: edge.log().count("reason=unknown_device") >= 3, 30, "the resends")
        assert read_state(till)["acked_seq"] == 0 and "rejected" not in read_state(till)["detail"]
        enroll(db_url, till)
        tail = till_events(till)[-1][0]
        wait_for(lambda: read_state(till)["acked_seq"] == tail, 30, "the drain after enrolment")
        assert agent.alive()
    finally:
        if agent is not None:
            agent.stop()
        edge.stop()
    store = Store.open(db_url)
    try:
        assert admin.stored_events(store, "t1")[-1][0] == tail
        assert admin.stats(store)["rejected"]["unknown_device"] >= 1
    finally:
        store.close()
