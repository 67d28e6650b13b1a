"""The region's signed lists on a till: applying them, and reading the ones in force.

A schedule, a roster or a bookings list reaches the till as a TBRU region update
(:mod:`appliance.formats.region`): from the sync agent, which takes the retained message
of ``tillbox/v1/<tenant>/region/<kind>``, or from a file on a USB stick (``tillbox region
apply FILE``, ``tillbox event apply FILE``). Both call :func:`apply_signed`, so the rules
are the same and live here:

* the signature is the region's (the key of ``[sync] region_public_key``), checked
  before anything is parsed;
* the update is for this till's tenant;
* its version is above the one applied: an older or repeated update changes nothing
  (a retained message comes again at every connect);
* it is recorded as ``schedule.applied`` / ``roster.applied`` / ``bookings.applied``, so
  it syncs up and an inspector sees which lists the till traded under. A bookings list
  names customers, so the log records only its version, count and SHA-256; the signed
  bytes themselves are kept in ``DIR/region/bookings-<version>.tbru`` (written
  crash-safely before the commit, older versions removed after it, re-verified on every
  read), outside the append-only log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacl.signing import VerifyKey

from appliance import events as ev
from appliance import keys, projections
from appliance.boundedio import read_bounded
from appliance.errors import RuleViolation, TillError
from appliance.formats import region as fmt
from appliance.formats import wire
from appliance.fsutil import atomic_write

if TYPE_CHECKING:
    import sqlite3

    from appliance.formats.chain import Event
    from appliance.till import Till

APPLIED_TYPES = {
    fmt.SCHEDULE: ev.SCHEDULE_APPLIED,
    fmt.ROSTER: ev.ROSTER_APPLIED,
    fmt.BOOKINGS: ev.BOOKINGS_APPLIED,
    fmt.RELEASE: ev.UPDATE_OFFERED,
}
# What a till thinks of a release notice: "" to take it, else why not (one line). The
# sync agent passes one built from the updater (drivers.update_fetch.offer_checker):
# the core knows no updater.
OfferCheck = Callable[[fmt.ReleaseNotice], str]


@dataclass(frozen=True)
class Applied:
    """What applying one update did: ``applied`` (with its event) or ``unchanged``."""

    kind: str
    version: int
    status: str  # "applied" | "unchanged" | "ignored" (a release notice this till skips)
    event: Event | None = None
    previous: int = 0  # the version in force before

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "status": self.status,
            "previous_version": self.previous,
            "seq": self.event.seq if self.event else None,
        }


def region_key(till: Till) -> VerifyKey:
    """The region's public key, from ``[sync] region_public_key`` (hex or a key file)."""
    value = str(till.config.section("sync").get("region_public_key") or "")
    if not value:
        raise TillError(
            "no region key on this till; set [sync] region_public_key in tillbox.toml "
            "(the region's public key, from `tillbox edge keygen`)"
        )
    return keys.load_verify_key(value)


class RegionRefused(RuleViolation):
    """A region update this till will not apply; ``reason`` is the one word the sync
    agent counts (``updates_rejected.<reason>``): a :class:`wire.WireError` reason
    (``bad_signature``, ``oversize``, ``malformed``, ``wrong_kind``, ...) or
    ``wrong_tenant``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def bookings_path(till: Till, version: int) -> Path:
    return till.data_dir.root / "region" / f"bookings-{version}.tbru"


def apply_signed(
    till: Till, data: bytes, kind: str | None = None, offer_check: OfferCheck | None = None
) -> Applied:
    """Verify a TBRU message with the region key, then apply it (a USB file, the agent).

    A release notice is recorded as ``update.offered``, or as ``update.ignored`` with
    the reason ``offer_check`` gives (an older version, other hardware, a release key
    the keyring does not hold); without ``offer_check`` it is only offered (the
    download checks it again, and the install checks the bundle itself)."""
    try:
        update, value = fmt.open_region_data(data, region_key(till), kind)
    except wire.WireError as exc:
        raise RegionRefused(
            exc.reason,
            f"region update refused ({exc.reason}: {exc}); use a file the region signed "
            "(`tillbox edge event publish --out FILE`)",
        ) from None
    return _apply(till, update, value, data, offer_check)


def _apply(
    till: Till,
    update: wire.RegionUpdate,
    value: fmt.RegionData,
    data: bytes,
    offer_check: OfferCheck | None = None,
) -> Applied:
    tenant = till.tenant
    if update.tenant != tenant:
        raise RegionRefused(
            "wrong_tenant",
            f"this {update.kind} update is for tenant {update.tenant}, and this till belongs "
            f"to {tenant}; use the file made for {tenant}",
        )
    payload: dict[str, Any] = {
        "kind": update.kind,
        "version": update.version,
        "issued_wall_ms": update.issued_wall_ms,
        "source": "region",
    }
    event_type = APPLIED_TYPES[update.kind]
    if isinstance(value, fmt.Bookings):
        payload.update(count=len(value.bookings), sha256=hashlib.sha256(data).hexdigest())
    elif isinstance(value, fmt.ReleaseNotice):
        payload["notice"] = value.to_json()
        reason = offer_check(value) if offer_check else ""
        if reason:
            event_type = ev.UPDATE_IGNORED
            payload["reason"] = reason[:300]
    else:
        payload.update(value.to_json())
    with till.log.transaction() as tx:
        current = projections.region_row(tx.conn, update.kind)
        previous = current[0] if current else 0
        if update.version <= previous:
            return Applied(update.kind, update.version, "unchanged", previous=previous)
        if isinstance(value, fmt.Bookings):
            # The file first, under its own version: a crash before the commit leaves
            # only a file the log does not name (removed by the next apply).
            path = bookings_path(till, update.version)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            atomic_write(path, data, mode=0o600)
        event = tx.append(event_type, payload)
    if isinstance(value, fmt.Bookings):
        keep = bookings_path(till, update.version)
        for old in keep.parent.glob("bookings-*.tbru"):
            if old != keep:
                old.unlink(missing_ok=True)
    status = "ignored" if event_type == ev.UPDATE_IGNORED else "applied"
    return Applied(update.kind, update.version, status, event, previous)


# -- reading the lists in force ----------------------------------------------------------
class Lists:
    """The schedule, roster and bookings a till holds, parsed once per applied version."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, fmt.RegionData]] = {}

    def _get(self, conn: sqlite3.Connection, kind: str) -> fmt.RegionData | None:
        row = projections.region_row(conn, kind)
        if row is None:
            return None
        _version, seq, _issued, body = row
        cached = self._cache.get(kind)
        if cached is None or cached[0] != seq:
            self._cache[kind] = (seq, fmt.parse(kind, json.loads(body)))
        return self._cache[kind][1]

    def schedule(self, conn: sqlite3.Connection) -> fmt.Schedule | None:
        value = self._get(conn, fmt.SCHEDULE)
        assert value is None or isinstance(value, fmt.Schedule)
        return value

    def roster(self, conn: sqlite3.Connection) -> fmt.Roster | None:
        value = self._get(conn, fmt.ROSTER)
        assert value is None or isinstance(value, fmt.Roster)
        return value

    def stall(self, conn: sqlite3.Connection, device_id: str) -> str:
        """This till's stall as the roster names it; "" without a roster entry."""
        roster = self.roster(conn)
        entry = roster.device(device_id) if roster else None
        return entry.stall if entry else ""


def release_offer(conn: sqlite3.Connection) -> fmt.ReleaseNotice | None:
    """The release notice in force, unless it was ignored; None when there is none."""
    row = projections.region_row(conn, fmt.RELEASE)
    if row is None:
        return None
    body = json.loads(row[3])
    if body.get("ignored"):
        return None
    value = fmt.parse(fmt.RELEASE, body["notice"])
    assert isinstance(value, fmt.ReleaseNotice)
    return value


def version(conn: sqlite3.Connection, kind: str) -> int:
    """The version of ``kind`` in force; 0 before any was applied."""
    row = projections.region_row(conn, kind)
    return int(row[0]) if row else 0


def bookings(till: Till) -> fmt.Bookings | None:
    """The bookings list in force, read back from its signed file and checked against
    the hash the log recorded; None before any was applied."""
    row = projections.region_row(till.log.conn, fmt.BOOKINGS)
    if row is None:
        return None
    expected = json.loads(row[3])["sha256"]
    path = bookings_path(till, int(row[0]))
    try:
        data = read_bounded(path, fmt.MAX_BYTES[fmt.BOOKINGS], "the bookings file")
    except TillError:
        data = b""
    if hashlib.sha256(data).hexdigest() != expected:
        raise TillError(
            f"{path} is missing or is not the bookings list this till applied (version "
            f"{row[0]}); sync (`tillbox sync --once`) or apply the region's bookings file again"
        )
    try:
        _update, value = fmt.open_region_data(data, region_key(till), fmt.BOOKINGS)
    except wire.WireError as exc:
        raise TillError(f"{path} no longer verifies ({exc}); apply the bookings again") from None
    assert isinstance(value, fmt.Bookings)
    return value
