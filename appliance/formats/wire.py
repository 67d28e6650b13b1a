"""The bytes that travel between a till and the region: segments, acks, region updates.

Three signed message kinds share one layout, so one small verifier covers all::

    magic (4 bytes) | version (1 byte) | ... | Ed25519 signature (last 64 bytes)

The signature covers every byte before it, and is checked *before* anything
else in the message is parsed (a receiver only needs to know which public key
to try, which it takes from the MQTT topic). docs/formats.md (section 4) gives the
exact layout and test vectors; nothing in this module is needed to reproduce
them.

* Segment (``TBSG``): a device's contiguous run of log events, signed by the
  device key. Its id is the SHA-256 of all its bytes; each segment names the
  id of the one before it, so the segments of a device form a chain too.
* Ack (``TBAK``): the region's signed statement that it stored (``ack``) or
  needs something resent (``nack``), naming the segment and (v2) echoing the
  nonce the agent sent with that publish, so an old answer cannot be replayed.
* Region update (``TBRU``): a catalog (prices, tax rules) signed by the region key.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from appliance.formats.canonical import canonical_bytes

SEGMENT_MAGIC = b"TBSG"
ACK_MAGIC = b"TBAK"
UPDATE_MAGIC = b"TBRU"
VERSION = 1
SIG_LEN = 64
ZLIB_LEVEL = 6
# Hard limits a receiver enforces before and while parsing (oversize, zip bombs).
MAX_SEGMENT_BYTES = 8 * 1024 * 1024
MAX_RAW_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 4096

_HEAD = struct.Struct(">4sBI")  # magic, version, header length


class WireError(ValueError):
    """A message that is not what it claims to be. ``reason`` is a short stats key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def topic_seg(tenant: str, device: str) -> str:
    return f"tillbox/v1/{tenant}/{device}/seg"


def topic_ack(tenant: str, device: str) -> str:
    return f"tillbox/v1/{tenant}/{device}/ack"


def topic_region(tenant: str, kind: str = "catalog") -> str:
    return f"tillbox/v1/{tenant}/region/{kind}"


def topic_health(tenant: str, device: str) -> str:
    """The device's signed telemetry (its health), written by the sync agent."""
    return f"tillbox/v1/{tenant}/{device}/health"


def topic_down(tenant: str, device: str, kind: str) -> str:
    """Signed region messages for one device only (an enrollment decision, ...)."""
    return f"tillbox/v1/{tenant}/{device}/down/{kind}"


SHARED_SEG_SUBSCRIPTION = "$share/tillbox-ingest/tillbox/v1/+/+/seg"
SHARED_HEALTH_SUBSCRIPTION = "$share/tillbox-ingest/tillbox/v1/+/+/health"


def parse_seg_topic(topic: str) -> tuple[str, str] | None:
    """(tenant, device) of a segment topic, None if it is not one."""
    return parse_device_topic(topic, "seg")


def parse_device_topic(topic: str, leaf: str) -> tuple[str, str] | None:
    """(tenant, device) of ``tillbox/v1/<tenant>/<device>/<leaf>``, None otherwise."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[:2] != ["tillbox", "v1"] or parts[4] != leaf:
        return None
    return parts[2], parts[3]


def segment_id(data: bytes) -> str:
    """A segment's id: hex SHA-256 of its complete bytes, signature included."""
    return hashlib.sha256(data).hexdigest()


# -- the common envelope ------------------------------------------------------------------
def verify_signed(
    data: bytes, magic: bytes, key: VerifyKey, max_len: int, versions: tuple[int, ...] = (VERSION,)
) -> bytes:
    """Check size, magic and signature; return the signed part. Parses nothing else."""
    if len(data) > max_len:
        raise WireError("oversize", f"{len(data)} bytes is over the {max_len}-byte limit")
    if len(data) < 5 + SIG_LEN or data[:4] != magic:
        raise WireError("malformed", "not a tillbox message (bad magic or too short)")
    signed, signature = data[:-SIG_LEN], data[-SIG_LEN:]
    try:
        key.verify(signed, signature)
    except BadSignatureError:
        raise WireError("bad_signature", "signature does not verify") from None
    if signed[4] not in versions:
        raise WireError("malformed", f"unsupported format version {signed[4]}")
    return signed


def _sign(signed: bytes, key: SigningKey) -> bytes:
    return signed + key.sign(signed).signature


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WireError("malformed", "signed JSON does not parse") from None
    if not isinstance(obj, dict):
        raise WireError("malformed", "signed JSON is not an object")
    return obj


# -- segments -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SegmentHeader:
    tenant: str
    device: str
    first_seq: int
    last_seq: int
    count: int
    prev: str
    comp: str
    raw_len: int
    raw_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "comp": self.comp,
            "count": self.count,
            "device": self.device,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "prev": self.prev,
            "raw_len": self.raw_len,
            "raw_sha256": self.raw_sha256,
            "tenant": self.tenant,
        }


def seal_segment(
    key: SigningKey,
    *,
    tenant: str,
    device: str,
    first_seq: int,
    last_seq: int,
    prev: str,
    lines: Iterable[bytes],
    comp: str = "zlib",
) -> bytes:
    """Sign a run of events. ``lines`` are each event's canonical JSON, without newline.

    Deterministic: the same key, events, prev and compression give the same bytes
    (Ed25519 signatures are deterministic; zlib is for a given library version).
    """
    lines = list(lines)
    raw = b"".join(line + b"\n" for line in lines)
    if comp == "zlib":
        body = zlib.compress(raw, ZLIB_LEVEL)
    elif comp == "none":
        body = raw
    else:
        raise ValueError(f"unknown compression {comp!r}")
    header = SegmentHeader(
        tenant,
        device,
        first_seq,
        last_seq,
        len(lines),
        prev,
        comp,
        len(raw),
        hashlib.sha256(raw).hexdigest(),
    )
    head = canonical_bytes(header.to_json())
    return _sign(_HEAD.pack(SEGMENT_MAGIC, VERSION, len(head)) + head + body, key)


def open_segment(
    data: bytes, key: VerifyKey, max_len: int = MAX_SEGMENT_BYTES
) -> tuple[SegmentHeader, bytes]:
    """Verify, then parse: (header, uncompressed body). Raises WireError with a reason."""
    signed = verify_signed(data, SEGMENT_MAGIC, key, max_len)
    if len(signed) < _HEAD.size:
        raise WireError("malformed", "segment too short for its header")
    _magic, _version, head_len = _HEAD.unpack_from(signed)
    if head_len > MAX_HEADER_BYTES or _HEAD.size + head_len > len(signed):
        raise WireError("malformed", "segment header length is out of range")
    obj = _json_object(signed[_HEAD.size : _HEAD.size + head_len])
    try:
        header = SegmentHeader(**obj)
    except TypeError:
        raise WireError("malformed", "segment header has missing or unknown fields") from None
    for name in ("first_seq", "last_seq", "count", "raw_len"):
        value = getattr(header, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise WireError("malformed", f"segment header {name} is not a whole number")
    if header.first_seq < 1 or header.last_seq - header.first_seq + 1 != header.count:
        raise WireError("malformed", "segment header sequence range does not match its count")
    if header.raw_len > MAX_RAW_BYTES:
        raise WireError("oversize", f"segment body of {header.raw_len} bytes is over the limit")
    body = signed[_HEAD.size + head_len :]
    if header.comp == "zlib":
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(body, header.raw_len + 1)
        except zlib.error:
            raise WireError("malformed", "segment body does not decompress") from None
        if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
            raise WireError("malformed", "segment body is longer than its header says")
    elif header.comp == "none":
        raw = body
    else:
        raise WireError("malformed", f"unknown compression {header.comp!r}")
    if len(raw) != header.raw_len or hashlib.sha256(raw).hexdigest() != header.raw_sha256:
        raise WireError("malformed", "segment body does not match its header")
    return header, raw


# -- acks ---------------------------------------------------------------------------------
ACK_V1 = 1  # no binding to the request: what agents before ack binding got (and kept)
ACK_V2 = 2  # + "nonce": the request's MQTT correlation data, so a replay is recognised
MIN_NONCE_BYTES, MAX_NONCE_BYTES = 16, 64


def nonce_hex(correlation: bytes | None) -> str:
    """The ``nonce`` an answer echoes for a segment published with this correlation data.

    "" (answer with an unbound v1 ack) when there is none or its length is outside
    16..64 bytes; the agent sends 16 random bytes with every publish of a segment.
    """
    if not correlation or not MIN_NONCE_BYTES <= len(correlation) <= MAX_NONCE_BYTES:
        return ""
    return bytes(correlation).hex()


@dataclass(frozen=True)
class Ack:
    """The edge's answer to one segment.

    ``status`` is ``ack`` (stored, or stored before: ``reason`` ``duplicate``) or
    ``nack`` (``reason`` ``gap`` or ``overlap``: resend from ``resend_from``).
    ``stored_seq``/``tip`` are the last event and segment the edge holds for the device.
    ``nonce`` (hex) binds the answer to one publish of the segment (TBAK v2); ""
    means an unbound v1 answer, which the agent no longer acts on.
    """

    tenant: str
    device: str
    status: str
    segment: str
    first_seq: int
    last_seq: int
    stored_seq: int
    tip: str
    resend_from: int = 0
    reason: str = ""
    nonce: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {
            "device": self.device,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "reason": self.reason,
            "resend_from": self.resend_from,
            "segment": self.segment,
            "status": self.status,
            "stored_seq": self.stored_seq,
            "tenant": self.tenant,
            "tip": self.tip,
        }
        if self.nonce:
            out["nonce"] = self.nonce
        return out


def seal_ack(key: SigningKey, ack: Ack) -> bytes:
    """TBAK v2 when the answer is bound to a request (``nonce``), else v1 (old agents)."""
    version = ACK_V2 if ack.nonce else ACK_V1
    return _sign(ACK_MAGIC + bytes([version]) + canonical_bytes(ack.to_json()), key)


def open_ack(data: bytes, key: VerifyKey) -> Ack:
    """Verify, then parse a v1 or v2 ack (v1 acks stay verifiable in old bundles)."""
    signed = verify_signed(data, ACK_MAGIC, key, 64 * 1024, (ACK_V1, ACK_V2))
    obj = _json_object(signed[5:])
    nonce = obj.get("nonce")
    if (signed[4] == ACK_V2) != ("nonce" in obj) or (
        nonce is not None and (type(nonce) is not str or not nonce)
    ):
        raise WireError("malformed", f"ack v{signed[4]} has the wrong nonce field")
    try:
        ack = Ack(**obj)
    except TypeError:
        raise WireError("malformed", "ack has missing or unknown fields") from None
    if ack.status not in ("ack", "nack"):
        raise WireError("malformed", f"ack status {ack.status!r} is unknown")
    return ack


# -- region updates -----------------------------------------------------------------------
@dataclass(frozen=True)
class RegionUpdate:
    tenant: str
    kind: str  # "catalog"
    version: int  # strictly increasing per tenant and kind; older ones are ignored
    issued_wall_ms: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "issued_wall_ms": self.issued_wall_ms,
            "kind": self.kind,
            "tenant": self.tenant,
            "version": self.version,
        }


def seal_update(key: SigningKey, update: RegionUpdate) -> bytes:
    return _sign(UPDATE_MAGIC + bytes([VERSION]) + canonical_bytes(update.to_json()), key)


def open_update(data: bytes, key: VerifyKey, max_len: int = 4 * 1024 * 1024) -> RegionUpdate:
    signed = verify_signed(data, UPDATE_MAGIC, key, max_len)
    obj = _json_object(signed[5:])
    try:
        update = RegionUpdate(**obj)
    except TypeError:
        raise WireError("malformed", "region update has missing or unknown fields") from None
    if (
        isinstance(update.version, bool)
        or not isinstance(update.version, int)
        or not isinstance(update.data, dict)
    ):
        raise WireError("malformed", "region update version or data has the wrong type")
    return update
