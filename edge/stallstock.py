"""The stall's stock, shared by its tills: the region's signed snapshot of each till's
stock movements, built after ingest and published retained, throttled.

The tills of one stall sell from one shelf, but each till's log knows only its own
sales. The region stores all of them, and keeps each till's net movement per SKU
(``device_stock``, in the segment's transaction; ``tillbox edge check`` recomputes
it). A snapshot for a stall lists, for every unrevoked device at that stall
(``device_profiles``), its last stored sequence number and its movements up to there:
a TBRU update of kind ``stock`` (``appliance.formats.region``, docs/formats.md section
4), retained on ``tillbox/v1/{tenant}/region/stock/{stall}``. A till adds the other
tills' movements to its own stock (``Till.stall_stock``).

Nothing is ever blocked on it: a till sells what the customer hands over, the shown
stock may go below zero (oversold: flagged, and the region's negative-stock flags
stay as they are).

:class:`StockPublisher` is the throttle: ingest marks the stall of a device whose
stored segment moved stock; every ``interval_s`` the marked stalls' snapshots are
built, signed, kept in ``region_updates`` (kind ``stock/<stall>``) and handed to the
caller to publish. Pure of MQTT: ``edge/service.py`` publishes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from appliance.formats import region as fmt
from appliance.formats import wire
from appliance.identifiers import is_identifier
from edge.store import Store, is_write_conflict

log = logging.getLogger("tillbox.edge")


@dataclass(frozen=True)
class Snapshot:
    tenant: str
    stall: str
    version: int
    data: bytes

    @property
    def topic(self) -> str:
        return fmt.topic_stock(self.tenant, self.stall)


def kept_kind(stall: str) -> str:
    """The ``region_updates`` kind a stall's latest snapshot is kept under."""
    return f"{fmt.STOCK}/{stall}"


def build(store: Store, key: SigningKey, tenant: str, stall: str) -> Snapshot | None:
    """Sign and keep the stall's snapshot from what is stored now; None when the stall
    has no device (or the snapshot cannot be signed: logged)."""
    devices: dict[str, tuple[int, list[tuple[str, int]]]] = {}
    for device, last_seq, sku, qty in store.stall_moves(tenant, stall):
        _seq, moves = devices.setdefault(device, (int(last_seq), []))
        if sku is not None and int(qty):
            moves.append((sku, int(qty)))
    if not devices:
        return None
    value = fmt.StallStock(
        stall,
        tuple(
            fmt.DeviceMoves(device, seq, tuple(moves)) for device, (seq, moves) in devices.items()
        ),
    )
    kind = kept_kind(stall)
    now = time.time_ns() // 1_000_000
    try:
        with store.transaction():
            kept = store.region_update(tenant, kind, lock=True)
            version = max((kept[0] if kept else 0) + 1, now)
            data = fmt.seal_stock(key, tenant, value, version, now)
            store.put_region_update(tenant, kind, version, data)
    except wire.WireError as exc:
        log.warning("edge stock snapshot of %s/%s not signed: %s", tenant, stall, exc)
        return None
    except Exception as exc:
        if is_write_conflict(exc):  # another worker made the first one at the same moment
            log.info("edge stock snapshot of %s/%s made elsewhere", tenant, stall)
            return None
        raise
    return Snapshot(tenant, stall, version, data)


class StockPublisher:
    """Marks the stalls whose stock moved; builds their snapshots at most every
    ``interval_s`` (0: never)."""

    def __init__(self, store: Store, key: SigningKey, interval_s: float) -> None:
        self.store = store
        self.key = key
        self.interval_s = interval_s
        self.dirty: set[str] = set()  # device ids whose stored segments moved stock
        self.last = float("-inf")

    def moved(self, device: str) -> None:
        if self.interval_s > 0:
            self.dirty.add(device)

    def due(self, now: float) -> list[Snapshot]:
        """The snapshots to publish now (built, signed and kept); [] until the interval."""
        if not self.dirty or now - self.last < self.interval_s:
            return []
        self.last = now
        devices, self.dirty = sorted(self.dirty), set()
        stalls: set[tuple[str, str]] = set()
        for device in devices:
            found = self._stall_of(device)
            if found is not None:
                stalls.add(found)
        out = []
        for tenant, stall in sorted(stalls):
            try:
                snapshot = build(self.store, self.key, tenant, stall)
            except Exception as exc:  # noqa: BLE001 - a snapshot must never stop ingest
                log.warning("edge stock snapshot of %s/%s failed: %s", tenant, stall, exc)
                continue
            if snapshot is not None:
                out.append(snapshot)
        return out

    def _stall_of(self, device: str) -> tuple[str, str] | None:
        enrolled = self.store.device_key(device)
        profile = self.store.device_profile(device)
        if enrolled is None or profile is None or not profile[0]:
            return None  # a till at no stall shares no stock
        if not is_identifier(profile[0]):
            return None  # not a stall a till can hold (the roster refuses it too)
        return enrolled[0], profile[0]


def to_json(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "tenant": snapshot.tenant,
        "stall": snapshot.stall,
        "version": snapshot.version,
        "bytes": len(snapshot.data),
        "topic": snapshot.topic,
    }
