"""The sync agent: moves a till's log to the region, one signed segment at a time.

One thread does everything (read, seal, publish, handle acks), driving paho's
network loop itself: no locks, and a SIGKILL between any two statements leaves
only committed state behind (see ``sync_agent.store``).

Flow control is go-back-N over a window of segments: up to ``window`` segments
are in flight; an ack (signed by the region) names a segment, and marks it and
everything before it synced; a NACK, a reconnect or an ack timeout sends every
unacked segment again, in order. The edge drops what it already has.

Every publish of a segment carries a fresh random nonce (MQTT v5 correlation
data) that the region's signed answer echoes (TBAK v2). The agent acts only on an
answer to a publish it made and has not had answered yet, for a segment still
unacked: a replayed old ack or NACK is ignored. A ``rejected:`` NACK (the region
will never store that segment) stops sending it until the agent restarts.

While online it also publishes the till's signed health message (telemetry,
:mod:`appliance.formats.telemetry`, gathered read-only by :mod:`sync_agent.health`):
once each time it comes online, when the till's state changes (looked at every
``state_interval_s``) and at least every ``health_interval_s``. QoS 1, never retained,
never awaited: segments never wait for it, and a failure to build one is logged and
skipped.

It applies the region's retained updates (``tillbox/v1/{tenant}/region/+``: the
catalog, the event schedule, the roster, the bookings) through
:mod:`sync_agent.region`. With ``once`` it exits only after the retained ones were
handled: it subscribes to its ack topic a second time after the first SUBACK, and the
broker answers that after sending the retained messages the first one released.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance import keys, sdnotify, sync_state
from appliance.datadir import DataDir
from appliance.errors import TillError
from appliance.formats import telemetry, wire
from appliance.formats.region import topic_stock
from appliance.formats.review import KIND as REVIEW_KIND
from appliance.sync_state import SyncState
from mqttio.client import (
    SessionCallbacks,
    close_quietly,
    jittered_backoff_s,
    session_client,
    start_session,
)
from sync_agent.config import SyncConfig
from sync_agent.enrollment import handle_review
from sync_agent.health import HealthReader
from sync_agent.reader import LogReader
from sync_agent.region import KINDS as REGION_KINDS
from sync_agent.region import handle_stock, handle_update, version_key
from sync_agent.store import AgentStore, Sealed

log = logging.getLogger("tillbox.sync")

STATE_DB = "agent.db"
NACK_HOLDOFF_S = 1.0
NONCE_BYTES = 16
MAX_OPEN_SENDS = 512  # unanswered publishes remembered (oldest forgotten first)


class Agent:
    def __init__(
        self,
        data_dir: DataDir,
        cfg: SyncConfig,
        *,
        once: bool = False,
        timeout_s: float | None = None,
        send_health: bool = True,
        fetch_updates: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.cfg = cfg
        self.once = once
        self.fetch_updates = fetch_updates  # the online update delivery's thread
        self.timeout_s = timeout_s
        config = data_dir.load_config()
        self.device = config.device_id
        self.tenant = str(config.section("device").get("tenant") or "demo")
        if not cfg.region_public_key:
            raise TillError(
                "[sync] region_public_key is not set; put the region's public key "
                "(64 hex digits or a file) in tillbox.toml so acks can be verified"
            )
        self.region_key = keys.load_verify_key(cfg.region_public_key)
        self.key = keys.load_signing_key(data_dir.private_key_path)
        self.reader = LogReader(data_dir.log_path)
        if self.reader.device_id != self.device:
            raise TillError(
                f"log.db belongs to {self.reader.device_id}, tillbox.toml says "
                f"{self.device}; point --data-dir at one till's folder"
            )
        self.store = AgentStore(data_dir.sync_dir / STATE_DB)
        self.seg_topic = wire.topic_seg(self.tenant, self.device)
        self.ack_topic = wire.topic_ack(self.tenant, self.device)
        # every retained region update of the tenant: catalog, schedule, roster, bookings
        self.region_topic = wire.topic_region(self.tenant, "+")
        self.region_prefix = wire.topic_region(self.tenant, "")
        # the stall's shared stock (appliance.stallstock): the tenant's stalls, one each
        self.stock_topic = topic_stock(self.tenant, "+")
        self.stock_prefix = topic_stock(self.tenant, "")
        # the region's signed review of this till's enrollment (sync_agent/enrollment.py)
        self.review_topic = wire.topic_down(self.tenant, self.device, REVIEW_KIND)
        self.health_topic = wire.topic_health(self.tenant, self.device)
        # send_health=False only for the drain benchmark's baseline (bench/drain.py)
        self.health = (
            HealthReader(self.reader.log, config, self.device, self.tenant) if send_health else None
        )
        self.health_due = True  # publish as soon as online (again after every reconnect)
        self.health_checked = float("-inf")
        self.health_sent = float("-inf")
        self.health_key: tuple | None = None
        self.queue: list[Sealed] = self.store.unacked()
        self.inflight: dict[str, float] = {}
        # nonce (hex) -> segment id of each publish not answered yet: the only answers
        # acted on. In memory: after a restart, answers to the old process are ignored.
        self.sends: dict[str, str] = {}
        self.refused: wire.Ack | None = None  # the region's rejected: NACK, until restart
        self.client: mqtt.Client | None = None
        self.connecting_since = 0.0
        self.connected = False
        self.ready = False
        self.subscribe_mid: int | None = None
        # --once exits only after the retained region updates were handled: the SUBACK of
        # a second subscription comes after the retained messages of the first
        self.barrier_mid: int | None = None
        self.region_synced = False
        self.attempts = 0
        self.next_attempt = 0.0
        self.unsealed_since: float | None = None
        self.last_nack: tuple[int, float] = (0, 0.0)
        self.busy_since: float | None = None  # when the window last went from empty to busy
        self.last_ack_at = 0.0
        self.rate = float(self.store.get("rate_eps", "0") or 0) or None
        self.detail = "starting"
        self.running = True  # False only in the last state written as the agent stops
        self.stop = False
        self.last_state_write = 0.0
        self.last_state: dict[str, Any] = {}
        self.last_watchdog = 0.0
        self.watchdog_s = sdnotify.watchdog_interval_s()

    # -- connection ---------------------------------------------------------------------------
    def _backoff(self, now: float, why: str) -> None:
        """Schedule the next attempt: exponential, capped, with jitter (no thundering herd)."""
        delay = jittered_backoff_s(self.attempts, self.cfg.backoff_min_s, self.cfg.backoff_max_s)
        self.attempts += 1
        self.next_attempt = now + delay
        self.detail = f"offline: {why}; retrying in {delay:.1f} s"
        sdnotify.notify(f"STATUS={self.detail}")
        log.info("sync offline reason=%r retry_s=%.2f attempt=%d", why, delay, self.attempts)

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        self.connected = self.ready = False
        self.inflight.clear()
        close_quietly(client)

    def _connect(self, now: float) -> None:
        cfg = self.cfg
        client = session_client(
            # the region broker binds the client id to the login (docs/sync.md)
            cfg.client_id or cfg.username or f"tillbox-{self.tenant}-{self.device}",
            cfg,
            SessionCallbacks(
                self._on_connect, self._on_subscribe, self._on_disconnect, self._on_message
            ),
            connect_timeout_s=cfg.connect_timeout_s,
        )
        self.client = client
        self.connecting_since = now
        try:
            start_session(
                client, cfg.broker.host, cfg.broker.port, cfg.keepalive_s, cfg.session_expiry_s
            )
        except (OSError, ValueError) as exc:
            self._drop_client()
            self._backoff(now, f"cannot reach {cfg.broker.redacted()} ({exc.__class__.__name__})")

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if client is not self.client:
            return
        if reason.is_failure:
            self._drop_client()
            self._backoff(time.monotonic(), f"broker refused the connection ({reason})")
            return
        self.connected = True
        _rc, self.subscribe_mid = client.subscribe(
            [
                (self.ack_topic, 1),
                (self.region_topic, 1),
                (self.review_topic, 1),
                (self.stock_topic, 1),
            ]
        )
        log.info(
            "sync connected broker=%s session_present=%s",
            self.cfg.broker.redacted(),
            getattr(flags, "session_present", None),
        )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if client is not self.client:
            return
        if mid == self.barrier_mid:
            self.region_synced = True  # every retained region update came before this
            return
        if mid != self.subscribe_mid:
            return
        if len(reasons) > 2 and reasons[2].is_failure:
            # Reviews are not needed to sync: a broker whose ACL predates the down topics
            # must not stop the sales from reaching the region.
            log.warning("sync enrollment review subscription refused (%s)", reasons[2])
        if len(reasons) > 3 and reasons[3].is_failure:
            log.warning("sync stall stock subscription refused (%s)", reasons[3])
        if any(r.is_failure for r in reasons[:2]):
            log.error(
                "sync subscribe refused reasons=%s; check the broker ACL", [str(r) for r in reasons]
            )
            self._drop_client()
            self._backoff(time.monotonic(), "the broker refused the ack subscription")
            return
        self.ready = True
        self.attempts = 0
        # Subscribing to the ack topic again changes nothing (no retained acks), but its
        # SUBACK is queued behind the retained region messages the first one released.
        _rc, self.barrier_mid = client.subscribe(self.ack_topic, 1)
        self.inflight.clear()  # after any reconnect every unacked segment goes again
        self.health_due = True
        self.detail = f"online: {self.cfg.broker.redacted()}"
        sdnotify.notify(f"STATUS={self.detail}")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if client is not self.client:
            return
        self._drop_client()
        self._backoff(time.monotonic(), f"connection lost ({reason})")

    # -- incoming -----------------------------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic == self.ack_topic:
                self._handle_ack(msg.payload)
            elif msg.topic.startswith(self.stock_prefix):
                handle_stock(self.data_dir, msg.payload, self.store)
            elif msg.topic.startswith(self.region_prefix):
                handle_update(
                    self.data_dir,
                    self.region_key,
                    self.tenant,
                    msg.topic[len(self.region_prefix) :],
                    msg.payload,
                    self.store,
                )
            elif msg.topic == self.review_topic:
                handle_review(
                    self.data_dir,
                    self.region_key,
                    self.device,
                    self.tenant,
                    msg.payload,
                    self.store,
                )
        except TillError as exc:
            log.error("sync message on %s not handled: %s", msg.topic, exc)

    def _handle_ack(self, payload: bytes) -> None:
        try:
            ack = wire.open_ack(payload, self.region_key)
        except wire.WireError as exc:
            self.store.bump(f"acks_rejected.{exc.reason}")
            log.warning("sync ack rejected reason=%s detail=%s", exc.reason, exc)
            return
        if ack.device != self.device or ack.tenant != self.tenant:
            self.store.bump("acks_rejected.wrong_device")
            log.warning("sync ack for another device rejected device=%s", ack.device)
            return
        if self.sends.pop(ack.nonce, None) != ack.segment or not any(
            s.id == ack.segment for s in self.queue
        ):
            # Not the answer to a publish still open (a replay, an unbound v1 answer, or
            # one for a segment already acked): acting on it could mark unstored events
            # synced or jump the chain back to an old tip.
            self.store.bump("acks_ignored.not_in_flight")
            log.info(
                "sync ack ignored: not for a segment in flight status=%s reason=%s seqs=%d-%d",
                ack.status,
                ack.reason,
                ack.first_seq,
                ack.last_seq,
            )
            return
        if ack.status == "ack":
            self._acked(ack.segment, payload)
            return
        self._handle_nack(ack)

    def _acked(self, seg_id: str, ack_bytes: bytes | None = None) -> None:
        # ack_bytes: the verified signed ack, kept as the bundle's proof of storage
        newly = self.store.mark_acked(seg_id, ack_bytes)
        sealed = self.store.by_id(seg_id)
        if sealed is None:
            return
        done = {s.id for s in self.queue if s.first_seq <= sealed.first_seq}
        self.queue = [s for s in self.queue if s.id not in done]
        for seg in done:
            self.inflight.pop(seg, None)
        self.sends = {n: seg for n, seg in self.sends.items() if seg not in done}
        if newly:
            self._sample_rate(time.monotonic(), newly)

    def _handle_nack(self, ack: wire.Ack) -> None:
        now = time.monotonic()
        if ack.reason.startswith("rejected:"):
            # Signed by us, refused by the region for good (it cannot store it; resending
            # the same bytes cannot help, and later segments chain on it). Stop sending
            # from it on (it stays queued: nothing is lost) until the agent restarts, and
            # say so where the technician looks.
            self.refused = ack
            self.store.bump(f"segments_refused.{ack.reason.split(':', 1)[1]}")
            self.inflight.clear()
            self.detail = f"error: {self.refusal()}"
            sdnotify.notify(f"STATUS={self.detail}")
            log.error(
                "sync segment refused by the region seqs=%d-%d reason=%s; not resending it",
                ack.first_seq,
                ack.last_seq,
                ack.reason,
            )
            return
        log.info(
            "sync nack reason=%s resend_from=%d stored_seq=%d",
            ack.reason,
            ack.resend_from,
            ack.stored_seq,
        )
        tip_segment = self.store.by_id(ack.tip)
        if tip_segment is not None:
            self._acked(ack.tip)
        start = next((s for s in self.queue if s.first_seq == ack.resend_from), None)
        if start is None or start.prev != ack.tip:
            # The edge's chain and ours differ (our state was lost or restored from a
            # backup, or the edge's was): continue from the tip the edge signed.
            log.warning("sync rebasing onto the edge's tip seq=%d", ack.resend_from - 1)
            self.store.rebase(ack.resend_from - 1, ack.tip)
            self.queue = self.store.unacked()
            self.inflight.clear()
            self.sends.clear()
            return
        if self.last_nack[0] == ack.resend_from and now - self.last_nack[1] < NACK_HOLDOFF_S:
            return  # the other in-flight segments' NACKs say the same thing
        self.last_nack = (ack.resend_from, now)
        self.inflight.clear()

    def refusal(self) -> str:
        """One line on the segment the region refused ("" when none)."""
        ack = self.refused
        if ack is None:
            return ""
        return (
            f"the region refuses events {ack.first_seq}-{ack.last_seq} ({ack.reason}); "
            "sync stopped there and nothing is lost: a technician must check the region "
            "(tillbox edge stats, its log), then restart tillbox-sync"
        )

    # -- outgoing -----------------------------------------------------------------------------
    def _seal(self, now: float) -> None:
        """Seal full segments while the window has room; a partial one when it is old."""
        limit = self.cfg.segment_max_events
        while len(self.queue) < 2 * self.cfg.window:
            tip_seq, tip_id = self.store.tip()
            tail = self.reader.tail()[0]
            waiting = tail - tip_seq
            if waiting <= 0:
                self.unsealed_since = None
                return
            if self.unsealed_since is None:
                self.unsealed_since = now
            aged = now - self.unsealed_since >= self.cfg.segment_max_age_s
            if waiting < limit and not (self.once or aged):
                return
            lines = self.reader.lines(tip_seq, limit)
            first, last = tip_seq + 1, tip_seq + len(lines)
            data = wire.seal_segment(
                self.key,
                tenant=self.tenant,
                device=self.device,
                first_seq=first,
                last_seq=last,
                prev=tip_id,
                lines=lines,
            )
            seg_id = wire.segment_id(data)
            self.store.add(first, last, seg_id, tip_id, data)
            self.queue.append(Sealed(first, last, seg_id, tip_id, len(data)))
            self.unsealed_since = now if last < tail else None

    def _publish(self, now: float) -> None:
        client = self.client
        if not self.ready or client is None:
            return
        if any(now - sent > self.cfg.ack_timeout_s for sent in self.inflight.values()):
            log.info("sync ack timeout; resending %d unacked segments", len(self.queue))
            self.inflight.clear()
        for seg in self.queue:
            if len(self.inflight) >= self.cfg.window:
                break
            if self.refused is not None and seg.first_seq >= self.refused.first_seq:
                break  # the region will not store it, nor anything chained after it
            if seg.id in self.inflight:
                continue
            data = self.store.data(seg.id)
            if data is None:
                continue
            if not self.inflight:
                self.busy_since = now
            nonce = secrets.token_bytes(NONCE_BYTES)
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = nonce
            self.sends[nonce.hex()] = seg.id
            while len(self.sends) > MAX_OPEN_SENDS:
                del self.sends[next(iter(self.sends))]
            client.publish(self.seg_topic, data, qos=1, properties=props)
            if self.client is not client:
                # paho ran on_disconnect inside publish (the socket write failed): the
                # client is gone and every unacked segment goes again after reconnect.
                break
            self.inflight[seg.id] = now

    def _health(self, now: float) -> None:
        """Publish the health message when due: online again, changed, or the interval."""
        client = self.client
        if self.health is None or not self.ready or client is None:
            return
        if not self.health_due and now - self.health_checked < self.cfg.state_interval_s:
            return
        self.health_checked = now
        try:
            acked = self.store.acked_seq()
            health = self.health.health(
                tail=self.reader.tail()[0],
                acked_seq=acked,
                drain_estimate_s=self.state(now).drain_estimate_s,
                now_ms=time.time_ns() // 1_000_000,
            )
            key = health.status_key()
            if (
                not self.health_due
                and key == self.health_key
                and now - self.health_sent < self.cfg.health_interval_s
            ):
                return
            data = telemetry.seal_health(self.key, health)
        except Exception as exc:  # noqa: BLE001 - telemetry must never stop the sync
            log.warning("sync health message not built: %s: %s", type(exc).__name__, exc)
            self.health_due = False
            return
        client.publish(self.health_topic, data, qos=1, retain=False)
        self.health_due, self.health_key, self.health_sent = False, key, now
        log.debug("sync health published bytes=%d", len(data))

    # -- published state ---------------------------------------------------------------------
    def _sample_rate(self, now: float, events: int) -> None:
        """Throughput while busy: events acked over the time since the previous ack (or
        since the window filled). Smoothed, and kept across restarts, so an offline till
        can still say "about N s once online"."""
        start = max(self.last_ack_at, self.busy_since or now)
        self.last_ack_at = now
        if now - start < 1e-3:
            return
        sample = events / (now - start)
        self.rate = sample if self.rate is None else 0.7 * self.rate + 0.3 * sample

    def _rate(self, now: float) -> float | None:
        return self.rate

    def state(self, now: float) -> SyncState:
        tail = self.reader.tail()[0]
        acked = self.store.acked_seq()
        queued = max(0, tail - acked)
        sealed_seq = self.store.tip()[0]
        per_event = self.store.bytes_per_event() or 0.0
        queued_bytes = self.store.unacked_bytes() + int(max(0, tail - sealed_seq) * per_event)
        rate = self._rate(now)
        return SyncState(
            online=self.ready,
            acked_seq=acked,
            last_seq=tail,
            queued_events=queued,
            queued_bytes=queued_bytes,
            last_ack_wall_ms=self.store.last_ack_ms(),
            drain_estimate_s=round(queued / rate, 1)
            if rate and queued
            else (0.0 if not queued else None),
            updated_wall_ms=time.time_ns() // 1_000_000,
            detail=self.detail,
            running=self.running,
        )

    def _write_state(self, now: float, force: bool = False) -> SyncState | None:
        if not force and now - self.last_state_write < 0.5:
            return None
        state = self.state(now)
        key = {k: v for k, v in state.to_json().items() if k != "updated_wall_ms"}
        # Rewritten at least every interval even when nothing changed: readers take a file
        # older than a few intervals to mean the agent is not running.
        if (
            force
            or key != self.last_state
            or now - self.last_state_write >= self.cfg.state_interval_s
        ):
            sync_state.write(self.data_dir.sync_dir, state)
            self.last_state = key
            self.last_state_write = now
            if self.rate:
                self.store.put("rate_eps", f"{self.rate:.1f}")
        return state

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (or, with ``once``, until all is acked or the timeout)."""
        start = time.monotonic()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, self._request_stop)
            except ValueError:  # not the main thread (tests)
                pass
        # Ready as soon as the loop runs: offline is a till's normal state, and systemd
        # must not hold the unit in "activating" (nor skip the watchdog) until a network
        # appears. Online/offline goes to systemd as STATUS= lines.
        sdnotify.notify("READY=1")
        fetch_stop = threading.Event()
        if self.fetch_updates and not self.once:
            threading.Thread(
                target=self._fetch_loop, args=(fetch_stop,), name="update-fetch", daemon=True
            ).start()
        try:
            while not self.stop:
                now = time.monotonic()
                if self.client is None and now >= self.next_attempt:
                    self._connect(now)
                elif (
                    self.client is not None
                    and not self.connected
                    and now - self.connecting_since > self.cfg.connect_timeout_s
                ):
                    self._drop_client()
                    self._backoff(now, "no answer from the broker (CONNACK timeout)")
                self._seal(now)
                self._publish(now)
                self._health(now)
                if self.client is not None:
                    self.client.loop(timeout=0.01 if self.inflight else 0.1)
                else:
                    time.sleep(min(0.1, max(0.0, self.next_attempt - now)))
                self._write_state(now)
                self._watchdog(now)
                if self.once and self.refused is not None:
                    self._write_state(time.monotonic(), force=True)
                    return 1  # cannot drain; the CLI prints refusal()
                if (
                    self.once
                    and self.region_synced
                    and self.queue == []
                    and self.store.acked_seq() >= self.reader.tail()[0]
                ):
                    self._write_state(time.monotonic(), force=True)
                    log.info("sync drained acked_seq=%d", self.store.acked_seq())
                    return 0
                if self.timeout_s is not None and now - start > self.timeout_s:
                    state = self._write_state(now, force=True)
                    queued = state.queued_events if state else -1
                    log.warning("sync timeout with %d events still unacked", queued)
                    return 1
            return 0
        finally:
            fetch_stop.set()
            self._drop_client()
            self.detail = f"agent not running (last: {self.detail})"
            self.running = False
            self._write_state(time.monotonic(), force=True)
            self.store.close()
            self.reader.close()

    def _fetch_loop(self, stop: threading.Event) -> None:
        """The online update delivery (drivers.update_fetch), in its own thread with its
        own log connection: a download takes minutes and must never hold up the sync.
        Each pass only downloads (a sale pauses it): the agent is not root and RAUC is
        root's, so root's ``tillbox update apply`` installs the download between shifts.
        A failure is logged and tried again at the next pass."""
        from appliance.till import Till
        from drivers.update_fetch import step

        last = ""
        while True:
            try:
                with Till.open(self.data_dir) as till:
                    interval = float(till.config.section("updates")["download_check_s"])
                    outcome = step(till, sleep=lambda s: stop.wait(s) and None)
                if outcome != last and outcome not in ("none", "done"):
                    log.info("sync update fetch: %s", outcome)  # once per change, not per pass
                last = outcome
            except TillError as exc:
                interval = 60.0
                log.warning("sync update fetch: %s", exc)
            except Exception as exc:  # noqa: BLE001 - never take the sync down with it
                interval = 60.0
                log.error("sync update fetch failed: %s: %s", type(exc).__name__, exc)
            if stop.wait(interval):
                return

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stop = True

    def _watchdog(self, now: float) -> None:
        if self.watchdog_s and now - self.last_watchdog >= self.watchdog_s:
            sdnotify.notify("WATCHDOG=1")
            self.last_watchdog = now


def status(data_dir: DataDir) -> dict[str, Any]:
    """The published state plus the agent's own counters (for ``tillbox sync status``)."""
    state = sync_state.read(data_dir.sync_dir).to_json()
    path = data_dir.sync_dir / STATE_DB
    counters: dict[str, int] = {}
    segments = {"unacked": 0, "acked": 0}
    if path.exists():
        store = AgentStore(path)
        try:
            counters = store.counters(
                (
                    "acks_rejected",
                    "acks_ignored",
                    "updates_",
                    "segments_refused",
                    "reviews_",
                    "stock_",
                )
            )
            segments = store.segment_counts()
            state["region_catalog_version"] = int(store.get(version_key("catalog"), "0"))
            state["region_versions"] = {
                kind: int(store.get(version_key(kind), "0")) for kind in REGION_KINDS
            }
        finally:
            store.close()
    state["counters"] = counters
    state["segments"] = segments
    return json.loads(json.dumps(state))
