"""Health ingest: verify a till's signed health message, keep the latest and a bounded history.

No I/O but the store, like :class:`edge.ingest.Ingestor`: bytes in, an outcome out;
``edge/service.py`` does the MQTT. The checks, in order:

1. the topic is ``tillbox/v1/<tenant>/<device>/health``;
2. at most :data:`~appliance.formats.telemetry.MAX_HEALTH_BYTES` (``oversize``);
3. the device is enrolled (``unknown_device``) for the topic's tenant (``wrong_tenant``);
4. the Ed25519 signature by that device's key, before a byte of the body is parsed
   (``bad_signature``), then the body's exact form (``non_canonical``, ``malformed``);
5. the device is not revoked (``revoked``);
6. the body names the topic's device and tenant (``device_mismatch``).

A refused message is counted in ``rejections`` as ``health:<reason>`` (``tillbox edge
stats``) and never stored, nor answered (a health message gets no ack). A verified one
replaces the device's ``telemetry_latest`` row and is appended to
``telemetry_history``, which keeps the newest :data:`HISTORY_KEEP` per device (pruned in
the same transaction); one the history already holds (a QoS 1 redelivery, or a replay:
every message has its own ``sent_ms``) changes nothing. The clock skew the fleet page
shows is ``received_ms - sent_ms`` of the latest row.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from nacl.signing import VerifyKey

from appliance.formats import telemetry, wire
from appliance.formats.canonical import canonical_text
from edge.store import Store

log = logging.getLogger("tillbox.edge")

HISTORY_KEEP = 500  # health messages kept per device: 41 hours at one each 5 minutes
REASON_PREFIX = "health:"


@dataclass(frozen=True)
class HealthOutcome:
    status: str  # stored | duplicate | rejected | ignored
    reason: str = ""
    device: str = ""
    health: telemetry.Health | None = None


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class HealthIngestor:
    def __init__(
        self,
        store: Store,
        history_keep: int = HISTORY_KEEP,
        max_bytes: int = telemetry.MAX_HEALTH_BYTES,
    ) -> None:
        self.store = store
        self.history_keep = history_keep
        self.max_bytes = max_bytes
        self._keys: dict[str, tuple[str, VerifyKey]] = {}  # a device keeps its key for life

    def _device(self, device: str) -> tuple[str, VerifyKey] | None:
        if device not in self._keys:
            row = self.store.device_key(device)
            if row is None:
                return None
            self._keys[device] = (row[0], VerifyKey(bytes.fromhex(row[1])))
        return self._keys[device]

    def handle(self, topic: str, payload: bytes, received_ms: int | None = None) -> HealthOutcome:
        """Check and store one message from the health topic tree; never raises for bad
        input (a database error propagates: the caller logs it; the next one comes soon)."""
        where = wire.parse_device_topic(topic, "health")
        if where is None:
            return HealthOutcome("ignored", "not a health topic")
        tenant, device = where
        try:
            health = self._verify(tenant, device, payload)
        except _Refused as exc:
            log.warning(
                "edge rejected health device=%s tenant=%s reason=%s detail=%s bytes=%d",
                device,
                tenant,
                exc.reason,
                exc,
                len(payload),
            )
            counted = "" if exc.reason == "unknown_device" else device
            self.store.count_rejection(counted, REASON_PREFIX + exc.reason)
            return HealthOutcome("rejected", exc.reason, device)
        now = time.time_ns() // 1_000_000 if received_ms is None else received_ms
        body = canonical_text(health.to_json())
        stored = self.store.put_telemetry(
            device, tenant, now, health.sent_ms, body, self.history_keep
        )
        log.debug(
            "edge health device=%s stored=%s skew_ms=%d", device, stored, now - health.sent_ms
        )
        return HealthOutcome("stored" if stored else "duplicate", "", device, health)

    def _verify(self, tenant: str, device: str, payload: bytes) -> telemetry.Health:
        if len(payload) > self.max_bytes:
            raise _Refused("oversize", f"{len(payload)} bytes is over {self.max_bytes}")
        enrolled = self._device(device)
        if enrolled is None:
            raise _Refused("unknown_device", "device is not enrolled")
        if enrolled[0] != tenant:
            raise _Refused("wrong_tenant", f"device is enrolled for tenant {enrolled[0]}")
        try:
            health = telemetry.open_health(payload, enrolled[1], self.max_bytes)
        except wire.WireError as exc:
            raise _Refused(exc.reason, str(exc)) from None
        revoked = self.store.revocation(device)
        if revoked is not None:
            raise _Refused("revoked", f"device revoked at {revoked[0]} ({revoked[1]})")
        if (health.device, health.tenant) != (device, tenant):
            raise _Refused("device_mismatch", f"body names {health.tenant}/{health.device}")
        return health
