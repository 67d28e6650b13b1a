"""The region's signed lists for a tenant's tills: build, sign, keep, (publish).

Each list is a TBRU region update of its kind (``appliance.formats.region``): the
schedule of events, the roster of devices (built from the enrolled, unrevoked devices
and their stalls, ``device_profiles``), and the bookings. The latest signed bytes of
each (tenant, kind) are kept in ``region_updates``: that is the message published
retained on ``tillbox/v1/<tenant>/region/<kind>`` (``publish`` here, or the edge
service in wave 2), and what a technician copies to a USB stick (``--out FILE``).

Versions only grow: a new list gets ``max(previous + 1, now in ms)`` unless a higher
one is given; a version at or below the kept one is refused (a till would ignore it).
A booking is added to the kept list (read back and verified with the region key first)
in one transaction, so two operators adding bookings at once cannot drop one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from appliance.errors import RuleViolation, TillError
from appliance.formats import region as fmt
from appliance.formats import wire
from appliance.identifiers import is_identifier
from edge.store import Store, is_write_conflict


@dataclass(frozen=True)
class Kept:
    tenant: str
    kind: str
    version: int
    data: bytes

    @property
    def topic(self) -> str:
        return wire.topic_region(self.tenant, self.kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "kind": self.kind,
            "version": self.version,
            "bytes": len(self.data),
            "topic": self.topic,
        }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _next_version(previous: int, asked: int | None) -> int:
    if asked is None:
        return max(previous + 1, _now_ms())
    if asked <= previous:
        raise RuleViolation(
            f"version {asked} is not above the kept version {previous}; tills apply only "
            "newer versions (leave --version out to take the time)"
        )
    return asked


@contextmanager
def _one_writer(store: Store, tenant: str, kind: str) -> Iterator[None]:
    """A transaction; a concurrent first write of the same list (no row to lock yet,
    PostgreSQL) loses with a line that says to try again."""
    try:
        with store.transaction():
            yield
    except Exception as exc:
        if is_write_conflict(exc):
            raise TillError(
                f"the {kind} list of {tenant} was changed at the same moment; try again"
            ) from None
        raise


def _keep(
    store: Store, key: SigningKey, tenant: str, value: fmt.RegionData, version: int | None
) -> Kept:
    kind = fmt.kind_of(value)
    with _one_writer(store, tenant, kind):
        kept = store.region_update(tenant, kind, lock=True)
        chosen = _next_version(kept[0] if kept else 0, version)
        data = _seal(key, tenant, value, chosen)
        store.put_region_update(tenant, kind, chosen, data)
    return Kept(tenant, kind, chosen, data)


def _seal(key: SigningKey, tenant: str, value: fmt.RegionData, version: int) -> bytes:
    try:
        return fmt.seal_region_data(key, tenant, value, version, _now_ms())
    except wire.WireError as exc:
        raise RuleViolation(f"not signed: {exc}") from None


def _parse(kind: str, data: Any) -> fmt.RegionData:
    try:
        return fmt.parse(kind, data)
    except wire.WireError as exc:
        raise RuleViolation(f"{kind} refused: {exc}; fix the file and try again") from None


def publish_schedule(
    store: Store, key: SigningKey, tenant: str, data: Any, version: int | None = None
) -> Kept:
    """Sign and keep the tenant's event schedule: ``{"events": [...]}`` (or the list)."""
    if isinstance(data, list):
        data = {"events": data}
    return _keep(store, key, tenant, _parse(fmt.SCHEDULE, data), version)


def publish_roster(store: Store, key: SigningKey, tenant: str, version: int | None = None) -> Kept:
    """Sign and keep the roster of the tenant's enrolled, unrevoked devices."""
    devices = [
        {"device_id": d, "public_key": k, "stall": stall}
        for d, k, stall in store.roster_rows(tenant)
    ]
    for device in devices:
        if device["stall"] and not is_identifier(device["stall"]):
            raise RuleViolation(
                f"device {device['device_id']}'s stall {device['stall'][:40]!r} cannot go in "
                "a roster (1-64 of A-Z a-z 0-9 - _); set it with `tillbox edge device set "
                "--stall`"
            )
    return _keep(store, key, tenant, _parse(fmt.ROSTER, {"devices": devices}), version)


def refresh_roster(store: Store, key: SigningKey, tenant: str) -> Kept | None:
    """After a device of ``tenant`` was enrolled, revoked or moved to another stall: sign
    and keep a new roster when the kept one no longer lists exactly the enrolled,
    unrevoked devices and their stalls; None when it still does (nothing to tell)."""
    kept_row = store.region_update(tenant, fmt.ROSTER)
    if kept_row is not None:
        current = [
            {"device_id": d, "public_key": k, "stall": stall}
            for d, k, stall in store.roster_rows(tenant)
        ]
        try:
            _update, value = fmt.open_region_data(kept_row[1], key.verify_key, fmt.ROSTER)
        except wire.WireError:
            value = None  # kept under another key: sign it anew with this one
        if value is not None and value.to_json() == {"devices": current}:
            return None
    return publish_roster(store, key, tenant)


def kept_bookings(store: Store, key: SigningKey, tenant: str) -> fmt.Bookings:
    """The tenant's kept bookings list, verified with the region key; empty when none."""
    kept = store.region_update(tenant, fmt.BOOKINGS)
    if kept is None:
        return fmt.Bookings(())
    try:
        _update, value = fmt.open_region_data(kept[1], key.verify_key, fmt.BOOKINGS)
    except wire.WireError as exc:
        raise TillError(
            f"the kept bookings of {tenant} do not verify with this region key ({exc}); "
            "use the region's own key"
        ) from None
    assert isinstance(value, fmt.Bookings)
    return value


def add_booking(
    store: Store,
    key: SigningKey,
    tenant: str,
    booking: dict[str, Any],
    version: int | None = None,
) -> tuple[Kept, fmt.Booking, str]:
    """Add one booking (``id`` and ``number`` chosen when absent) to the tenant's list:
    (the kept list, the booking, its QR payload for the customer)."""
    with _one_writer(store, tenant, fmt.BOOKINGS):
        kept = store.region_update(tenant, fmt.BOOKINGS, lock=True)
        current = kept_bookings(store, key, tenant)
        raw = dict(booking)
        raw.setdefault("id", str(uuid.uuid4()))
        raw.setdefault("number", max((b.number for b in current.bookings), default=0) + 1)
        raw.setdefault("stall", "")
        if current.by_id(str(raw["id"])) is not None:
            raise RuleViolation(f"booking {raw['id']} exists already; give another --id")
        value = _parse(fmt.BOOKINGS, {"bookings": [*current.to_json()["bookings"], raw]})
        assert isinstance(value, fmt.Bookings)
        chosen = _next_version(kept[0] if kept else 0, version)
        data = _seal(key, tenant, value, chosen)
        store.put_region_update(tenant, fmt.BOOKINGS, chosen, data)
    added = value.by_id(str(raw["id"]))
    assert added is not None
    qr = fmt.booking_qr(key, tenant, added.id, added.number)
    return Kept(tenant, fmt.BOOKINGS, chosen, data), added, qr


def publish_release(
    store: Store,
    key: SigningKey,
    tenant: str,
    notice: fmt.ReleaseNotice,
    version: int | None = None,
) -> Kept:
    """Sign and keep the tenant's "update available" notice (edge.releases.notice)."""
    return _keep(store, key, tenant, _parse(fmt.RELEASE, notice.to_json()), version)


def kept(store: Store, tenant: str, kind: str) -> Kept | None:
    """The tenant's kept update of ``kind`` (what is published), or None."""
    row = store.region_update(tenant, kind)
    return None if row is None else Kept(tenant, kind, row[0], row[1])
