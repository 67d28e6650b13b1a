"""``tillbox edge serve``: one ingest worker on the region's broker.

Workers join the shared subscription ``$share/tillbox-ingest/...``, so the
broker splits segments between however many run (on one machine or many, on
mosquitto, EMQX or HiveMQ); the database's row lock on the device keeps two
workers from storing the same device's chain at once.

A persistent session (clean start off, a client id the broker binds to the worker's
own login, so no other login can take it over) means segments that
arrive while a worker restarts wait at the broker. Each segment is handled in the
message callback (verify, parse, one transaction, publish the signed ack), and
paho sends the broker's PUBACK only after the callback returned, i.e. after the
store committed: a crash at any point means the broker delivers it again.

(A variant that parsed on paho's thread and committed on a writer thread was
measured: no faster on 2 cores and ~10 % more CPU, so the simple form stays;
docs/performance.md.)

The same workers take the tills' signed health messages (``$share/tillbox-ingest/
.../health``, :mod:`edge.telemetry`): verified, stored as each device's latest with a
bounded history, never answered. A database error on one is logged and the message
dropped: the till sends another within minutes, and segments never wait for it.

After a stored segment that moved stock, the worker marks the device's stall; at most
every ``stock_interval_s`` it signs the marked stalls' stock snapshots and publishes
them retained (:mod:`edge.stallstock`), so the tills of a stall see each other's sales.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey

from appliance import sdnotify
from appliance.formats import wire
from appliance.formats.brokerurl import BrokerURL
from edge.ingest import Ingestor, StoreUnavailable
from edge.stallstock import StockPublisher
from edge.store import Store
from edge.telemetry import HealthIngestor
from mqttio.client import (
    SessionCallbacks,
    close_quietly,
    jittered_backoff_s,
    session_client,
    start_session,
)

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
    # both off only for the drain benchmark's baseline (bench/drain.py); a region that
    # turned them off would have no fleet page and rollups that `edge check` finds short
    rollups: bool = True
    telemetry: bool = True
    # the stalls' shared stock snapshots: at most this often (0: never)
    stock_interval_s: float = 10.0

    def subscriptions(self) -> list[str]:
        topics = [wire.SHARED_SEG_SUBSCRIPTION]
        return [*topics, wire.SHARED_HEALTH_SUBSCRIPTION] if self.telemetry else topics


class EdgeService:
    def __init__(self, store: Store, region_key: SigningKey, opts: ServeOptions) -> None:
        self.store = store
        self.opts = opts
        self.ingestor = Ingestor(
            store, region_key, opts.max_segment_bytes, with_rollups=opts.rollups
        )
        self.health = HealthIngestor(store) if opts.telemetry else None
        self.stock = StockPublisher(store, region_key, opts.stock_interval_s)
        self.client: mqtt.Client | None = None
        self.ready = False
        self.stop = False
        self.attempts = 0
        self.next_attempt = 0.0
        self.connecting_since = 0.0
        self.counts: dict[str, int] = {}
        self.notified = False
        self.watchdog_s = sdnotify.watchdog_interval_s()
        self.last_watchdog = 0.0

    def _backoff(self, why: str) -> None:
        delay = jittered_backoff_s(self.attempts, self.opts.backoff_min_s, self.opts.backoff_max_s)
        self.attempts += 1
        self.next_attempt = time.monotonic() + delay
        log.info("edge offline reason=%r retry_s=%.2f", why, delay)

    def _drop(self) -> None:
        client, self.client, self.ready = self.client, None, False
        close_quietly(client)

    def _connect(self) -> None:
        o = self.opts
        client = session_client(
            o.client_id,
            o,
            SessionCallbacks(
                self._on_connect, self._on_subscribe, self._on_disconnect, self._on_message
            ),
        )
        self.client = client
        self.connecting_since = time.monotonic()
        try:
            start_session(client, o.broker.host, o.broker.port, o.keepalive_s, o.session_expiry_s)
        except (OSError, ValueError) as exc:
            self._drop()
            self._backoff(f"cannot reach {o.broker.redacted()} ({exc.__class__.__name__})")

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if client is not self.client:
            return
        if reason.is_failure:
            self._drop()
            self._backoff(f"broker refused the connection ({reason})")
            return
        # retain-as-published: the worker sees when a device sent a segment retained,
        # and clears that copy (the broker's ACL cannot refuse the retain flag).
        options = mqtt.SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe([(topic, options) for topic in self.opts.subscriptions()])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error(
                "edge subscription refused (%s); check the broker ACL for the edge user",
                [str(r) for r in reasons],
            )
            self._drop()
            self._backoff("subscription refused")
            return
        self.ready = True
        self.attempts = 0
        log.info(
            "edge subscribed broker=%s topic=%s",
            self.opts.broker.redacted(),
            " ".join(self.opts.subscriptions()),
        )
        if not self.notified:
            sdnotify.notify("READY=1")
            self.notified = True

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if client is not self.client:
            return
        self._drop()
        self._backoff(f"connection lost ({reason})")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and not msg.payload:
            return  # a worker clearing a retained copy (below): not a segment
        if msg.topic.endswith("/health"):
            self._on_health(msg)
            return
        if msg.retain:
            # A till never retains a segment; a device that does would leave its bytes
            # in the broker after it left. Clear the copy, then handle it as any segment.
            client.publish(msg.topic, b"", qos=1, retain=True)
            log.warning("edge cleared a retained segment topic=%s", msg.topic)
        # The agent puts a fresh nonce in each publish's MQTT v5 correlation data; the
        # signed answer echoes it, so the agent can tell it from a replayed old one.
        correlation = getattr(msg.properties, "CorrelationData", None)
        try:
            outcome = self.ingestor.handle(msg.topic, msg.payload, wire.nonce_hex(correlation))
        except StoreUnavailable:
            return  # logged by the ingestor; no answer, so the agent resends later
        except Exception:
            log.exception("edge could not process a message on %s; it will be resent", msg.topic)
            return
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if outcome.ack is not None:
            client.publish(outcome.ack_topic, outcome.ack, qos=1)
        if outcome.moved_stock:
            self.stock.moved(outcome.device)

    def _publish_stock(self, now: float) -> None:
        client = self.client
        if not self.ready or client is None:
            return
        for snapshot in self.stock.due(now):
            # retained: a till that connects later gets the latest; a publish the broker
            # refuses (a worker role without the stock topic) is lost, the next one retries
            client.publish(snapshot.topic, snapshot.data, qos=1, retain=True)
            log.debug("edge stock snapshot topic=%s v=%d", snapshot.topic, snapshot.version)

    def _on_health(self, msg: mqtt.MQTTMessage) -> None:
        if self.health is None:
            return
        try:
            outcome = self.health.handle(msg.topic, msg.payload)
        except Exception as exc:  # noqa: BLE001 - a database error: this one is lost, not ingest
            log.warning("edge could not store a health message on %s: %s", msg.topic, exc)
            return
        key = f"health_{outcome.status}"
        self.counts[key] = self.counts.get(key, 0) + 1

    def run(self, duration_s: float | None = None) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, lambda *_: setattr(self, "stop", True))
            except ValueError:
                pass
        start = time.monotonic()
        try:
            while not self.stop:
                now = time.monotonic()
                if duration_s is not None and now - start > duration_s:
                    break
                if self.client is None:
                    if now >= self.next_attempt:
                        self._connect()
                    else:
                        time.sleep(min(0.1, self.next_attempt - now))
                        continue
                elif not self.ready and now - self.connecting_since > 15:
                    self._drop()
                    self._backoff("no answer from the broker")
                    continue
                if self.client is not None:
                    self.client.loop(timeout=0.2)
                    self._publish_stock(now)
                if self.watchdog_s and now - self.last_watchdog >= self.watchdog_s:
                    sdnotify.notify("WATCHDOG=1")
                    self.last_watchdog = now
        finally:
            self._drop()
        return 0
