"""A device with stolen, valid credentials against the region broker (issue 11, 1-3).

The real mosquitto runs the shipped ``edge/mosquitto/mosquitto.conf`` (the ``broker``
fixture substitutes only ports and paths). The attacker is a plain paho client written
here, not tillbox's own MQTT code, logged in as t2 (or t1) of tenant ``demo``.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.formats import wire
from edge import admin
from edge.broker import ADMIN_USER
from edge.store import Store
from systest.sync import (
    ADMIN_PASSWORD,
    check_exactly_once,
    device_password,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    seal_log,
    sell,
    sync_once,
    wait_for,
)

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
QUEUE_LIMIT = 64 * MiB  # max_queued_bytes in the shipped mosquitto.conf


class Client:
    """A blocking MQTT client: each call waits for the broker's answer (or says none came)."""

    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        client_id: str,
        protocol: int = mqtt.MQTTv5,
        session_expiry_s: int = 0,
        clean_start: bool = False,
    ) -> None:
        self.port = port
        self.protocol = protocol
        self.clean_start = clean_start
        self.session_expiry_s = session_expiry_s
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        self.client.username_pw_set(username, password)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.messages: list[mqtt.MQTTMessage] = []
        self.answers: dict[int, object] = {}
        self.answered = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        self.client.on_message = lambda c, u, msg: self.messages.append(msg)
        self.client.on_subscribe = lambda c, u, mid, reasons, p: self._answer(mid, reasons)
        self.client.on_publish = lambda c, u, mid, reason, p: self._answer(mid, reason)

    def _on_connect(self, c: mqtt.Client, u: object, f: object, reason: object, p: object) -> None:
        self.connack = reason
        self.connected.set()

    def _answer(self, mid: int, value: object) -> None:
        with self.answered:
            self.answers[mid] = value
            self.answered.notify_all()

    def _wait(self, mid: int, timeout: float) -> object | None:
        with self.answered:
            self.answered.wait_for(
                lambda: mid in self.answers or self.disconnected.is_set(), timeout
            )
            return self.answers.get(mid)

    def connect(self) -> Client:
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            self.client.connect(
                "127.0.0.1", self.port, keepalive=30, clean_start=self.clean_start, properties=props
            )
        else:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        return self

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> list:
        result, mid = self.client.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        return list(self._wait(mid, 10) or [])

    def publish(self, topic: str, data: bytes, retain: bool = False) -> object | None:
        """The PUBACK's reason code, or None when the broker dropped the connection."""
        info = self.client.publish(topic, data, qos=1, retain=retain)
        return self._wait(info.mid, 30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def as_device(broker, device: str, client_id: str | None = None, **kw: object) -> Client:
    return Client(broker.port, device, device_password(device), client_id or device, **kw)


def as_admin(broker) -> Client:
    return Client(broker.port, ADMIN_USER, ADMIN_PASSWORD, ADMIN_USER)


def refused(reasons: list) -> bool:
    return bool(reasons) and all(r.is_failure for r in reasons)


def stored(db: str, device: str) -> int:
    store = Store.open(db)
    try:
        return len(admin.stored_events(store, device))
    finally:
        store.close()


def test_a_device_cannot_take_over_the_edge_or_another_till(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 30)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    victim = as_device(broker, "t1", "tillbox-demo-t1", session_expiry_s=300).connect()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        assert victim.accepted
        # Five takeovers in a few seconds, with the ids the edge and a till use.
        for stolen_id in ("tillbox-edge-1", "tillbox-demo-t1", "t1", "tillbox-edge-1", "t1"):
            attacker = as_device(broker, "t2", stolen_id).connect()
            time.sleep(0.3)
            attacker.close()
        time.sleep(1.0)
        assert not victim.disconnected.is_set(), "t2 kicked t1's session off the broker"
        assert "connection lost" not in edge.log(), "t2 kicked the ingest worker off"
        assert edge.log().count("edge subscribed") == 1
        victim.close()
        # ... and the till's normal path to the edge still works.
        done = sync_once(till, broker.url, 30)
        assert done.returncode == 0, done.stderr[-2000:]
        check_exactly_once(db_url, [till])
    finally:
        victim.close()
        edge.stop()


def test_a_device_cannot_wipe_another_tills_queued_ack(broker):
    ack_topic = wire.topic_ack("demo", "t1")
    victim = as_device(broker, "t1", "tillbox-demo-t1", session_expiry_s=300).connect()
    assert not refused(victim.subscribe(ack_topic))
    victim.close()
    edge = as_admin(broker).connect()  # stands in for the edge: any ack bytes will do
    assert not edge.publish(ack_topic, b"the ack t1 waits for").is_failure
    edge.close()
    for stolen_id in ("tillbox-demo-t1", "t1"):  # a clean start under t1's id
        as_device(broker, "t2", stolen_id, clean_start=True).connect().close()
    victim = as_device(broker, "t1", "tillbox-demo-t1", session_expiry_s=300).connect()
    try:
        wait_for(lambda: victim.messages, 10, "t1's queued ack")
        assert [m.payload for m in victim.messages] == [b"the ack t1 waits for"]
    finally:
        victim.close()


def test_a_device_cannot_join_the_ingest_shared_subscription(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region, segment_max_events=5)
    sell(till, 40)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    attacker = as_device(broker, "t2").connect()
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        for topic in (
            wire.SHARED_SEG_SUBSCRIPTION,
            "$share/tillbox-ingest/tillbox/v1/demo/t1/seg",
            "tillbox/v1/+/+/seg",
            "tillbox/v1/demo/t1/ack",
            "$share/x/tillbox/v1/demo/t1/ack",
            "#",
        ):
            assert refused(attacker.subscribe(topic)), f"t2 may subscribe to {topic}"
        done = sync_once(till, broker.url, 60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert attacker.messages == []
        check_exactly_once(db_url, [till])
    finally:
        attacker.close()
        edge.stop()


def test_a_device_is_bound_to_its_own_tenant(broker):
    device = as_device(broker, "t1").connect()
    publisher = as_admin(broker).connect()
    try:
        assert device.accepted
        # writing under an invented tenant, retained or not: refused, nothing kept
        for retain in (False, True):
            reason = device.publish("tillbox/v1/acme/t1/seg", b"x" * 1000, retain=retain)
            assert reason is None or reason.is_failure, "t1 wrote under tenant acme"
        assert device.publish("tillbox/v1/demo/region/catalog", b"x", retain=True).is_failure
        # reading another tenant's region updates: refused
        assert refused(device.subscribe("tillbox/v1/acme/region/catalog"))
        assert refused(device.subscribe("tillbox/v1/+/region/#"))
        # its own tenant's: allowed, and delivered
        assert not refused(device.subscribe("tillbox/v1/demo/region/catalog"))
        publisher.publish("tillbox/v1/acme/region/catalog", b"acme prices")
        publisher.publish("tillbox/v1/demo/region/catalog", b"demo prices")
        wait_for(lambda: device.messages, 10, "the demo update")
        time.sleep(0.5)
        assert [m.payload for m in device.messages] == [b"demo prices"]
        # nothing of the invented tenant is left in the broker
        spy = as_admin(broker)
        publisher.close()
        spy.connect()
        assert not refused(spy.subscribe("tillbox/v1/acme/#"))
        time.sleep(1.0)
        assert spy.messages == []
        spy.close()
    finally:
        device.close()
        publisher.close()


def test_a_retained_segment_from_a_device_is_not_kept(tmp_path, broker, db_url, region):
    till = make_till(tmp_path, "t1", region)
    sell(till, 10)
    enroll(db_url, till)
    edge = edge_proc(tmp_path, db_url, broker.url, region).start()
    topic = wire.topic_seg("demo", "t1")
    try:
        wait_for(lambda: edge_ready(edge), 20, "the edge to subscribe")
        device = as_device(broker, "t1").connect()
        for segment in seal_log(till):
            assert not device.publish(topic, segment, retain=True).is_failure
        device.close()
        wait_for(lambda: stored(db_url, "t1") > 0, 20, "the segment to be stored")

        def retained_copy_gone() -> bool:
            spy = as_admin(broker).connect()
            try:
                assert not refused(spy.subscribe(topic))
                time.sleep(0.5)
                return not [m for m in spy.messages if m.retain and m.payload]
            finally:
                spy.close()

        wait_for(retained_copy_gone, 15, "the retained copy to be cleared")
        stats = check_exactly_once(db_url, [till])
        assert stats["rejected"] == {}  # the clearing itself is not taken for a segment
    finally:
        edge.stop()


def test_an_oversized_publish_is_refused(broker):
    topic = wire.topic_seg("demo", "t1")
    spy = as_admin(broker).connect()
    try:
        assert not refused(spy.subscribe(topic))
        # MQTT 3.1.1: the client is not told the limit, so the broker itself must refuse.
        device = as_device(broker, "t1", protocol=mqtt.MQTTv311).connect()
        assert device.publish(topic, b"s" * (wire.MAX_SEGMENT_BYTES + 8192)) is None
        assert device.disconnected.wait(10)
        device.close()
        # the largest segment the edge accepts still passes
        device = as_device(broker, "t1", protocol=mqtt.MQTTv311).connect()
        assert device.publish(topic, b"s" * wire.MAX_SEGMENT_BYTES) is not None
        device.close()
        wait_for(lambda: spy.messages, 10, "the largest segment")
        assert [len(m.payload) for m in spy.messages] == [wire.MAX_SEGMENT_BYTES]
    finally:
        spy.close()


def test_what_waits_for_an_offline_device_is_bounded(broker):
    ack_topic = wire.topic_ack("demo", "t1")
    device = as_device(broker, "t1", session_expiry_s=300).connect()
    assert not refused(device.subscribe(ack_topic))
    device.close()
    flood = as_admin(broker).connect()
    try:
        for _ in range(QUEUE_LIMIT // (8 * MiB) + 4):  # 96 MiB for a 64 MiB queue
            assert not flood.publish(ack_topic, b"a" * (8 * MiB)).is_failure
    finally:
        flood.close()
    device = as_device(broker, "t1", session_expiry_s=300).connect()
    try:
        received = wait_for(lambda: len(device.messages) >= 2 and len(device.messages), 20)
        while True:  # until nothing more arrives for 2 s
            time.sleep(2.0)
            if len(device.messages) == received:
                break
            received = len(device.messages)
        total = sum(len(m.payload) for m in device.messages)
        assert 0 < total <= QUEUE_LIMIT + 8 * MiB, f"{total / MiB:.0f} MiB queued for t1"
    finally:
        device.close()
