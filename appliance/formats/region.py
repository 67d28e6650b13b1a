"""The region's signed lists for a tenant's tills: event schedule, roster, bookings.

Each list is the ``data`` of a TBRU region update (:mod:`appliance.formats.wire`) of
its own ``kind``, signed by the region key and retained on
``tillbox/v1/<tenant>/region/<kind>``, exactly like the catalog:

* ``schedule``: the tenant's events (pop-ups, fairs): where, when, under which tax
  profile and jurisdiction, with which permit and promoter, and for which stalls;
* ``roster``: the tenant's devices, each with its public key and its stall, so a till
  can check another till's receipt offline (refund at another till);
* ``bookings``: pre-orders to hand over at a stall, paid online or paid at pickup,
  optionally with a personalised item's engraving text;
* ``release``: a system update is available (version, hardware, an https URL of the
  bundle, its SHA-256 and size, the release key id): what the till downloads.

A receiver verifies the signature before anything else (:func:`open_region_data`
calls :func:`wire.open_update` first), then checks every field here, strictly: an
unknown key, a wrong type, a text with control characters, a list over its bound is
``malformed`` and the whole update is refused. ``version`` only grows per tenant and
kind; a till ignores one that is not above what it applied (the rule is the till's,
:mod:`appliance.region`). The booking QR code (``TBB1``) is the region's signature
over a booking's id and number. docs/formats.md (section 4) gives the exact bytes and
test vectors.

Pure core: the standard library and PyNaCl only.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from appliance.boundedio import UPDATE_BUNDLE_LIMIT
from appliance.errors import TillError
from appliance.formats import wire
from appliance.formats.canonical import MAX_SAFE_INT
from appliance.formats.release import parse_version
from appliance.identifiers import is_identifier

SCHEDULE = "schedule"
ROSTER = "roster"
BOOKINGS = "bookings"
RELEASE = "release"  # "a system update is available" (issue 14's online delivery)
KINDS = (SCHEDULE, ROSTER, BOOKINGS, RELEASE)

KiB = 1024
# The signed message's size cap per kind, checked before the signature (oversize).
MAX_BYTES = {SCHEDULE: 512 * KiB, ROSTER: 256 * KiB, BOOKINGS: 2048 * KiB, RELEASE: 4 * KiB}
MAX_EVENTS = 1000
MAX_DEVICES = 1000
MAX_BOOKINGS = 5000
MAX_BOOKING_ITEMS = 50
MAX_ITEM_QTY = 9999  # the till's own per-line cap (appliance.pricing.MAX_QTY)
MAX_STALLS = 100
MAX_BOOKING_NUMBER = 999_999_999
MAX_ENGRAVING_CHARS = 64
LAT_E7 = 900_000_000  # degrees x 10^7: canonical JSON has no floats
LON_E7 = 1_800_000_000
PAYMENTS = ("paid_online", "pay_at_pickup")


def _bad(detail: str) -> wire.WireError:
    return wire.WireError("malformed", detail)


# -- field checks: each returns the value or raises WireError("malformed") ---------------
def _text(value: Any, where: str, max_chars: int, *, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > max_chars:
        raise _bad(f"{where} must be a text of at most {max_chars} characters")
    if not empty and not value.strip():
        raise _bad(f"{where} must not be empty")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise _bad(f"{where} must be one line without control characters")
    return value


def _ident(value: Any, where: str, *, empty: bool = False) -> str:
    if empty and value == "":
        return ""
    if not is_identifier(value):
        raise _bad(f"{where} must be 1-64 of A-Z a-z 0-9 - _ (starting with a letter or digit)")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{where} must be a whole number from {low} to {high}")
    return value


def _object(
    value: Any, where: str, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object")
    missing = sorted(required - value.keys())
    unknown = sorted(value.keys() - required - optional)
    if missing:
        raise _bad(f"{where} lacks {missing[0]!r}")
    if unknown:
        raise _bad(f"{where} has the unknown field {unknown[0][:40]!r}")
    return value


def _list(value: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise _bad(f"{where} must be a list of at most {limit} entries")
    return value


def _unique(values: list[Any], where: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise _bad(f"{where} {value!r} is listed twice")
        seen.add(value)


# -- schedule -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduledEvent:
    """One event of a tenant's schedule. Times are Unix ms, ``start_ms`` inclusive and
    ``end_ms`` exclusive; ``stalls`` empty means every stall of the tenant attends."""

    id: str
    name: str
    address: str
    lat_e7: int
    lon_e7: int
    start_ms: int
    end_ms: int
    tax_profile: str
    jurisdiction: str
    permit: str
    promoter: str
    stalls: tuple[str, ...] = ()

    def for_stall(self, stall: str) -> bool:
        return not self.stalls or stall in self.stalls

    def covers(self, now_ms: int) -> bool:
        return self.start_ms <= now_ms < self.end_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "end_ms": self.end_ms,
            "id": self.id,
            "jurisdiction": self.jurisdiction,
            "lat_e7": self.lat_e7,
            "lon_e7": self.lon_e7,
            "name": self.name,
            "permit": self.permit,
            "promoter": self.promoter,
            "stalls": list(self.stalls),
            "start_ms": self.start_ms,
            "tax_profile": self.tax_profile,
        }


_EVENT_KEYS = {
    "id",
    "name",
    "address",
    "lat_e7",
    "lon_e7",
    "start_ms",
    "end_ms",
    "tax_profile",
    "jurisdiction",
    "permit",
    "promoter",
}


def _event(raw: Any, where: str) -> ScheduledEvent:
    o = _object(raw, where, _EVENT_KEYS, {"stalls"})
    stalls = tuple(
        _ident(s, f"{where} stalls[{i}]")
        for i, s in enumerate(_list(o.get("stalls", []), f"{where} stalls", MAX_STALLS))
    )
    _unique(list(stalls), f"{where} stall")
    event = ScheduledEvent(
        id=_ident(o["id"], f"{where} id"),
        name=_text(o["name"], f"{where} name", 200),
        address=_text(o["address"], f"{where} address", 300, empty=True),
        lat_e7=_int(o["lat_e7"], f"{where} lat_e7", -LAT_E7, LAT_E7),
        lon_e7=_int(o["lon_e7"], f"{where} lon_e7", -LON_E7, LON_E7),
        start_ms=_int(o["start_ms"], f"{where} start_ms", 0, MAX_SAFE_INT),
        end_ms=_int(o["end_ms"], f"{where} end_ms", 0, MAX_SAFE_INT),
        tax_profile=_ident(o["tax_profile"], f"{where} tax_profile"),
        jurisdiction=_text(o["jurisdiction"], f"{where} jurisdiction", 64),
        permit=_text(o["permit"], f"{where} permit", 100, empty=True),
        promoter=_ident(o["promoter"], f"{where} promoter", empty=True),
        stalls=stalls,
    )
    if event.end_ms <= event.start_ms:
        raise _bad(f"{where} ends ({event.end_ms}) before it starts ({event.start_ms})")
    return event


@dataclass(frozen=True)
class Schedule:
    events: tuple[ScheduledEvent, ...]

    def event(self, event_id: str) -> ScheduledEvent | None:
        return next((e for e in self.events if e.id == event_id), None)

    def for_stall(self, stall: str) -> tuple[ScheduledEvent, ...]:
        return tuple(e for e in self.events if e.for_stall(stall))

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_json() for e in self.events]}

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        o = _object(data, "schedule", {"events"})
        events = tuple(
            _event(raw, f"events[{i}]")
            for i, raw in enumerate(_list(o["events"], "events", MAX_EVENTS))
        )
        _unique([e.id for e in events], "event id")
        # Kept in start order: what a cashier is asked to choose from reads in time order.
        return cls(tuple(sorted(events, key=lambda e: (e.start_ms, e.id))))


# -- roster -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RosterDevice:
    device_id: str
    public_key: str  # 64 lower-case hex digits: the device's Ed25519 key
    stall: str  # "" when the device is not at a stall

    def verify_key(self) -> VerifyKey:
        return VerifyKey(bytes.fromhex(self.public_key))

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "public_key": self.public_key, "stall": self.stall}


def _device(raw: Any, where: str) -> RosterDevice:
    o = _object(raw, where, {"device_id", "public_key", "stall"})
    key = o["public_key"]
    if not (isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
        raise _bad(f"{where} public_key must be 64 lower-case hex digits")
    return RosterDevice(
        _ident(o["device_id"], f"{where} device_id"),
        key,
        _ident(o["stall"], f"{where} stall", empty=True),
    )


@dataclass(frozen=True)
class Roster:
    devices: tuple[RosterDevice, ...]

    def device(self, device_id: str) -> RosterDevice | None:
        return next((d for d in self.devices if d.device_id == device_id), None)

    def to_json(self) -> dict[str, Any]:
        return {"devices": [d.to_json() for d in self.devices]}

    @classmethod
    def from_json(cls, data: Any) -> Roster:
        o = _object(data, "roster", {"devices"})
        devices = tuple(
            _device(raw, f"devices[{i}]")
            for i, raw in enumerate(_list(o["devices"], "devices", MAX_DEVICES))
        )
        _unique([d.device_id for d in devices], "device")
        return cls(tuple(sorted(devices, key=lambda d: d.device_id)))


# -- bookings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BookingItem:
    sku: str
    qty: int
    engraving: str | None = None  # the personalised item's text, engraved at pickup

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"qty": self.qty, "sku": self.sku}
        if self.engraving is not None:
            out["engraving"] = self.engraving
        return out


@dataclass(frozen=True)
class Booking:
    id: str
    number: int  # the short number the customer says at the stall
    name: str  # the name the booking was made under
    payment: str  # "paid_online" | "pay_at_pickup"
    items: tuple[BookingItem, ...]
    stall: str  # "" when any stall of the tenant may hand it over

    @property
    def paid(self) -> bool:
        return self.payment == "paid_online"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "items": [i.to_json() for i in self.items],
            "name": self.name,
            "number": self.number,
            "payment": self.payment,
            "stall": self.stall,
        }


def _item(raw: Any, where: str) -> BookingItem:
    o = _object(raw, where, {"sku", "qty"}, {"engraving"})
    engraving = o.get("engraving")
    if engraving is not None:
        engraving = _text(engraving, f"{where} engraving", MAX_ENGRAVING_CHARS)
    return BookingItem(
        _ident(o["sku"], f"{where} sku"), _int(o["qty"], f"{where} qty", 1, MAX_ITEM_QTY), engraving
    )


def _booking(raw: Any, where: str) -> Booking:
    o = _object(raw, where, {"id", "number", "name", "payment", "items", "stall"})
    if o["payment"] not in PAYMENTS:
        raise _bad(f"{where} payment must be paid_online or pay_at_pickup")
    items = tuple(
        _item(it, f"{where} items[{i}]")
        for i, it in enumerate(_list(o["items"], f"{where} items", MAX_BOOKING_ITEMS))
    )
    if not items:
        raise _bad(f"{where} has no items")
    return Booking(
        _ident(o["id"], f"{where} id"),
        _int(o["number"], f"{where} number", 1, MAX_BOOKING_NUMBER),
        _text(o["name"], f"{where} name", 100),
        o["payment"],
        items,
        _ident(o["stall"], f"{where} stall", empty=True),
    )


@dataclass(frozen=True)
class Bookings:
    bookings: tuple[Booking, ...]

    def by_id(self, booking_id: str) -> Booking | None:
        return next((b for b in self.bookings if b.id == booking_id), None)

    def by_number(self, number: int) -> Booking | None:
        return next((b for b in self.bookings if b.number == number), None)

    def to_json(self) -> dict[str, Any]:
        return {"bookings": [b.to_json() for b in self.bookings]}

    @classmethod
    def from_json(cls, data: Any) -> Bookings:
        o = _object(data, "bookings", {"bookings"})
        bookings = tuple(
            _booking(raw, f"bookings[{i}]")
            for i, raw in enumerate(_list(o["bookings"], "bookings", MAX_BOOKINGS))
        )
        _unique([b.id for b in bookings], "booking id")
        _unique([b.number for b in bookings], "booking number")
        return cls(tuple(sorted(bookings, key=lambda b: b.number)))


# -- release: a system update is available -----------------------------------------------
MAX_URL_CHARS = 500
MAX_BUNDLE_BYTES = UPDATE_BUNDLE_LIMIT  # what a till will stage at most (2 GiB)
_HEX64 = frozenset("0123456789abcdef")


def _hex64(value: Any, where: str) -> str:
    if not (isinstance(value, str) and len(value) == 64 and set(value) <= _HEX64):
        raise _bad(f"{where} must be 64 lower-case hex digits")
    return value


def _https_url(value: Any, where: str) -> str:
    """An absolute https URL without credentials or fragment: the till fetches it
    unattended, checking the region's TLS certificate, so nothing else is accepted."""
    text = _text(value, where, MAX_URL_CHARS)
    if not text.isascii() or any(c in text for c in " \\"):
        raise _bad(f"{where} must be an ASCII URL without spaces or backslashes")
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc or parts.fragment:
        raise _bad(f"{where} must be https://HOST/PATH (no login, no #fragment)")
    return text


@dataclass(frozen=True)
class ReleaseNotice:
    """The region says: release ``version`` for ``compatible`` hardware is at ``url``;
    its bytes hash to ``sha256`` and number ``size``; it is signed by the release key
    ``key_id`` (the SPKI SHA-256 of :mod:`appliance.formats.release`). The bundle is
    still verified against the till's keyring before anything is installed: the notice
    only says what to fetch and bounds the download."""

    version: str
    compatible: str
    url: str
    sha256: str
    size: int
    key_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "compatible": self.compatible,
            "key_id": self.key_id,
            "sha256": self.sha256,
            "size": self.size,
            "url": self.url,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Any) -> ReleaseNotice:
        o = _object(data, "release", {"version", "compatible", "url", "sha256", "size", "key_id"})
        try:
            version = str(parse_version(o["version"], "release version"))
        except TillError as exc:
            raise _bad(str(exc)) from None
        return cls(
            version=version,
            compatible=_ident(o["compatible"], "release compatible"),
            url=_https_url(o["url"], "release url"),
            sha256=_hex64(o["sha256"], "release sha256"),
            size=_int(o["size"], "release size", 1, MAX_BUNDLE_BYTES),
            key_id=_hex64(o["key_id"], "release key_id"),
        )


RegionData = Schedule | Roster | Bookings | ReleaseNotice
_PARSERS: dict[str, Callable[[Any], RegionData]] = {
    SCHEDULE: Schedule.from_json,
    ROSTER: Roster.from_json,
    BOOKINGS: Bookings.from_json,
    RELEASE: ReleaseNotice.from_json,
}
_KIND_OF = {Schedule: SCHEDULE, Roster: ROSTER, Bookings: BOOKINGS, ReleaseNotice: RELEASE}


def kind_of(value: RegionData) -> str:
    return _KIND_OF[type(value)]


def parse(kind: str, data: Any) -> RegionData:
    """The checked list of ``kind`` from a region update's ``data``; WireError when wrong."""
    if kind not in _PARSERS:
        raise wire.WireError("wrong_kind", f"region update kind {kind!r} is not one of {KINDS}")
    return _PARSERS[kind](data)


# -- the signed message -------------------------------------------------------------------
def seal_region_data(
    key: SigningKey, tenant: str, value: RegionData, version: int, issued_wall_ms: int
) -> bytes:
    """The TBRU bytes of a schedule, roster, bookings list or release notice (checked as
    a till checks it)."""
    kind = kind_of(value)
    data = value.to_json()
    parse(kind, data)  # what the till would refuse is refused here, before it is signed
    _ident(tenant, "tenant")
    _int(version, "version", 1, MAX_SAFE_INT)
    update = wire.RegionUpdate(tenant, kind, version, issued_wall_ms, data)
    sealed = wire.seal_update(key, update)
    if len(sealed) > MAX_BYTES[kind]:
        raise wire.WireError(
            "oversize", f"the {kind} message is {len(sealed)} bytes, over {MAX_BYTES[kind]}"
        )
    return sealed


def open_region_data(
    data: bytes, key: VerifyKey, kind: str | None = None
) -> tuple[wire.RegionUpdate, RegionData]:
    """Verify (size, magic, signature: nothing is parsed before), then check the update
    and its list. ``kind`` is the one the topic or file names; None takes any of KINDS."""
    if kind is not None and kind not in MAX_BYTES:
        raise wire.WireError("wrong_kind", f"region update kind {kind!r} is not one of {KINDS}")
    limit = MAX_BYTES[kind] if kind else max(MAX_BYTES.values())
    update = wire.open_update(data, key, limit)
    if update.kind not in KINDS or (kind is not None and update.kind != kind):
        raise wire.WireError(
            "wrong_kind", f"this is a {str(update.kind)[:20]!r} update, not a {kind or KINDS}"
        )
    if len(data) > MAX_BYTES[update.kind]:
        raise wire.WireError("oversize", f"the {update.kind} message is over its size limit")
    _ident(update.tenant, "tenant")
    _int(update.version, "version", 1, MAX_SAFE_INT)
    _int(update.issued_wall_ms, "issued_wall_ms", 0, MAX_SAFE_INT)
    return update, parse(update.kind, update.data)


# -- the stall's stock, shared by its tills (kind "stock") --------------------------------
STOCK = "stock"
STOCK_MAX_BYTES = 1024 * KiB
MAX_STOCK_DEVICES = 100
MAX_STOCK_MOVES = 5000  # SKUs per device


def topic_stock(tenant: str, stall: str) -> str:
    """Where the stall's stock snapshot is retained: one per stall, under the tenant's
    region topics (a device may read all of them; a till takes its own stall's)."""
    return f"{wire.topic_region(tenant, STOCK)}/{stall}"


@dataclass(frozen=True)
class DeviceMoves:
    """What the region holds of one till's stock movements: every stored event up to
    ``seq``, per SKU, signed (sales and paid bookings take out, refunds put back)."""

    device_id: str
    seq: int
    moves: tuple[tuple[str, int], ...]  # (sku, net quantity), by SKU

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "moves": [{"qty": q, "sku": sku} for sku, q in self.moves],
            "seq": self.seq,
        }


@dataclass(frozen=True)
class StallStock:
    """The region's snapshot of the stock movements of one stall's tills."""

    stall: str
    devices: tuple[DeviceMoves, ...]

    def moved(self, sku: str, without: str = "") -> int:
        """The net movement of ``sku`` by the stall's tills, ``without`` that one."""
        return sum(
            q for d in self.devices if d.device_id != without for s, q in d.moves if s == sku
        )

    def to_json(self) -> dict[str, Any]:
        return {"devices": [d.to_json() for d in self.devices], "stall": self.stall}

    @classmethod
    def from_json(cls, data: Any) -> StallStock:
        o = _object(data, "stock", {"stall", "devices"})
        devices = []
        for i, raw in enumerate(_list(o["devices"], "devices", MAX_STOCK_DEVICES)):
            where = f"devices[{i}]"
            d = _object(raw, where, {"device_id", "seq", "moves"})
            moves = []
            for j, m in enumerate(_list(d["moves"], f"{where} moves", MAX_STOCK_MOVES)):
                move = _object(m, f"{where} moves[{j}]", {"sku", "qty"})
                moves.append(
                    (
                        _ident(move["sku"], f"{where} moves[{j}] sku"),
                        _int(move["qty"], f"{where} moves[{j}] qty", -MAX_SAFE_INT, MAX_SAFE_INT),
                    )
                )
            _unique([sku for sku, _q in moves], f"{where} sku")
            devices.append(
                DeviceMoves(
                    _ident(d["device_id"], f"{where} device_id"),
                    _int(d["seq"], f"{where} seq", 0, MAX_SAFE_INT),
                    tuple(sorted(moves)),
                )
            )
        _unique([d.device_id for d in devices], "device")
        return cls(_ident(o["stall"], "stall"), tuple(sorted(devices, key=lambda d: d.device_id)))


def seal_stock(
    key: SigningKey, tenant: str, value: StallStock, version: int, issued_wall_ms: int
) -> bytes:
    """The TBRU bytes of a stall's stock snapshot (checked as a till checks it)."""
    data = value.to_json()
    StallStock.from_json(data)
    _ident(tenant, "tenant")
    _int(version, "version", 1, MAX_SAFE_INT)
    sealed = wire.seal_update(key, wire.RegionUpdate(tenant, STOCK, version, issued_wall_ms, data))
    if len(sealed) > STOCK_MAX_BYTES:
        raise wire.WireError("oversize", f"the stock message is {len(sealed)} bytes")
    return sealed


def open_stock(data: bytes, key: VerifyKey) -> tuple[wire.RegionUpdate, StallStock]:
    """Verify (size, magic, signature first), then check a stock snapshot."""
    update = wire.open_update(data, key, STOCK_MAX_BYTES)
    if update.kind != STOCK:
        raise wire.WireError("wrong_kind", f"this is a {str(update.kind)[:20]!r} update, not stock")
    _ident(update.tenant, "tenant")
    _int(update.version, "version", 1, MAX_SAFE_INT)
    _int(update.issued_wall_ms, "issued_wall_ms", 0, MAX_SAFE_INT)
    return update, StallStock.from_json(update.data)


# -- the booking QR code ------------------------------------------------------------------
BOOKING_QR = "TBB1"
_SEP = "*"


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def booking_qr(key: SigningKey, tenant: str, booking_id: str, number: int) -> str:
    """``TBB1*<tenant>*<booking id>*<number>*<sig>``: what the customer's QR code holds."""
    _ident(tenant, "tenant")
    _ident(booking_id, "booking id")
    _int(number, "booking number", 1, MAX_BOOKING_NUMBER)
    signed = _SEP.join([BOOKING_QR, tenant, booking_id, str(number)]) + _SEP
    return signed + _b64u(key.sign(signed.encode("ascii")).signature)


@dataclass(frozen=True)
class BookingRef:
    tenant: str
    booking_id: str
    number: int


def open_booking_qr(payload: str, key: VerifyKey) -> BookingRef:
    """Verify a scanned booking QR with the region key, then read it; ValueError if not."""
    text = payload.strip()
    if len(text) > 300 or not text.isascii():
        raise ValueError("not a tillbox booking code (too long or not ASCII)")
    parts = text.split(_SEP)
    if len(parts) != 5 or parts[0] != BOOKING_QR:
        raise ValueError(f"not a tillbox booking code (expected {BOOKING_QR}*...)")
    signed, sig_text = text[: -len(parts[4])], parts[4]
    try:
        signature = base64.urlsafe_b64decode(sig_text + "=" * (-len(sig_text) % 4))
        if len(signature) != 64 or _b64u(signature) != sig_text:
            raise ValueError
        key.verify(signed.encode("ascii"), signature)
    except (ValueError, BadSignatureError):
        raise ValueError("the booking code's signature is not the region's (altered?)") from None
    _tag, tenant, booking_id, number = parts[:4]
    if not (number.isdigit() and str(int(number)) == number):
        raise ValueError("the booking code's number is not a whole number")
    try:
        return BookingRef(
            _ident(tenant, "tenant"),
            _ident(booking_id, "booking id"),
            _int(int(number), "number", 1, MAX_BOOKING_NUMBER),
        )
    except wire.WireError as exc:
        raise ValueError(str(exc)) from None
