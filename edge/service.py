"""``tillbox edge serve``: one ingest worker on the region's broker.

Workers join the shared subscription ``$share/tillbox-ingest/...``, so the
broker splits segments between however many run (on one machine or many, on
mosquitto, EMQX or HiveMQ); the database's row lock on the device keeps two
workers from storing the same device's chain at once.

A persistent session (clean start off, fixed client id) means segments that
arrive while a worker restarts wait at the broker; the worker sends the broker's
PUBACK itself (paho ``manual_ack``) only after the store committed, so a crash
at any point means the broker delivers the segment again.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey

from appliance import sdnotify
from edge.ingest import Ingestor
from edge.store import Store
from sync_agent import wire
from sync_agent.config import BrokerURL
from sync_agent.mqttc import connect_properties, make_client

log = logging.getLogger("tillbox.edge")


@dataclass(frozen=True)
class ServeOptions:
    broker: BrokerURL
    username: str = ""
    password: str = ""
    client_id: str = "tillbox-edge-1"
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    keepalive_s: int = 30
    session_expiry_s: int = 24 * 3600
    max_segment_bytes: int = wire.MAX_SEGMENT_BYTES
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0


class EdgeService:
    """Two threads: paho's network thread verifies and parses each segment (CPU), a
    writer thread runs its transaction, publishes the signed ack and only then sends
    the broker's PUBACK (paho ``manual_ack``). SQLite and psycopg release the GIL while
    they write and fsync, so parsing the next segment overlaps committing this one; a
    crash before the PUBACK makes the broker deliver the segment again."""

    def __init__(
        self, store: Store, region_key: SigningKey, opts: ServeOptions, key_store: Store
    ) -> None:
        self.store = store
        self.opts = opts
        self.ingestor = Ingestor(store, region_key, opts.max_segment_bytes, key_store)
        self.client: mqtt.Client | None = None
        self.generation = 0  # connections so far; an ack from an older one is dropped
        self.ready = False
        self.stop = False
        self.counts: dict[str, int] = {}
        self.notified = False
        self.watchdog_s = sdnotify.watchdog_interval_s()
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.writer = threading.Thread(target=self._write_loop, name="edge-writer", daemon=True)
        self.failed: BaseException | None = None

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error(
                "edge: broker refused the connection (%s); check the user and password", reason
            )
            return
        self.generation += 1
        client.subscribe(wire.SHARED_SEG_SUBSCRIPTION, qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error(
                "edge subscription refused (%s); check the broker ACL for the edge user",
                [str(r) for r in reasons],
            )
            return
        self.ready = True
        log.info(
            "edge subscribed broker=%s topic=%s",
            self.opts.broker.redacted(),
            wire.SHARED_SEG_SUBSCRIPTION,
        )
        if not self.notified:
            sdnotify.notify("READY=1")
            self.notified = True

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.ready = False
        if not self.stop:
            log.info("edge offline reason=%r; paho reconnects with backoff", str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            prepared = self.ingestor.prepare(msg.topic, msg.payload)
        except Exception:  # noqa: BLE001 - e.g. the database is down; the agent resends
            log.exception("edge could not check a message on %s; it will be resent", msg.topic)
            return
        self.queue.put((self.generation, msg.mid, msg.qos, prepared))  # blocks when behind

    def _write_loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            generation, mid, qos, prepared = item
            client = self.client
            try:
                outcome = self.ingestor.commit(prepared)
            except Exception:  # noqa: BLE001 - no PUBACK: the broker delivers it again
                log.exception("edge could not store a segment; it will be delivered again")
                continue
            self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
            if client is None:
                continue
            if outcome.ack is not None:
                client.publish(outcome.ack_topic, outcome.ack, qos=1)
            if generation == self.generation:
                client.ack(mid, qos)

    def run(self, duration_s: float | None = None) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, lambda *_: setattr(self, "stop", True))
            except ValueError:
                pass
        o = self.opts
        client = make_client(
            o.client_id,
            username=o.username,
            password=o.password,
            tls=o.broker.tls,
            tls_ca=o.tls_ca,
            tls_cert=o.tls_cert,
            tls_key=o.tls_key,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, int(o.backoff_max_s))
        self.client = client
        self.writer.start()
        client.connect_async(
            o.broker.host,
            o.broker.port,
            keepalive=o.keepalive_s,
            clean_start=False,
            properties=connect_properties(o.session_expiry_s),
        )
        client.loop_start()
        start = last_watchdog = time.monotonic()
        try:
            while not self.stop:
                now = time.monotonic()
                if duration_s is not None and now - start > duration_s:
                    break
                if self.watchdog_s and now - last_watchdog >= self.watchdog_s:
                    sdnotify.notify("WATCHDOG=1")
                    last_watchdog = now
                time.sleep(0.1)
        finally:
            self.stop = True
            client.disconnect()
            client.loop_stop()
            self.queue.put(None)
            self.writer.join(timeout=30)
        return 0
