"""The region's signed review of a till's enrollment (``TBER``): approve or reject, why, by whom.

Same envelope as the sync messages (:mod:`appliance.formats.wire`)::

    "TBER" | 0x01 | canonical JSON (keys below) | Ed25519 signature by the region key

The JSON binds the device, its tenant, the enrollment (its number and the SHA-256 of
the manifest's canonical bytes, which the device signed), the decision, the reason,
the reviewer, when, and the fingerprint of the region key that signs it. The
fingerprint is inside the signed bytes, so a decision names its own signer: a
verifier holding some key checks the signature with it *and* that the decision says
it was made with that key (a key rotation cannot pass an old decision off as new,
and an inspector compares 64 hex digits printed on a letter or a notice with one
field). docs/formats.md ("Enrollment review") has the bytes and a test vector.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey, VerifyKey

from appliance.formats import wire
from appliance.formats.canonical import (
    CanonicalFormError,
    NotJSONError,
    canonical_bytes,
    parse_canonical,
)
from appliance.identifiers import is_identifier

MAGIC = b"TBER"
VERSION = 1
MAX_BYTES = 8 * 1024  # a decision is ~500 bytes; the reason and reviewer are capped below
REASON_MAX = 500  # characters
REVIEWER_MAX = 100
DECISIONS = ("approve", "reject")
KIND = "enrollment"  # its down topic: tillbox/v1/{tenant}/{device}/down/enrollment
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEYS = frozenset(
    {
        "decided_wall_ms",
        "decision",
        "device_id",
        "manifest_sha256",
        "reason",
        "region_key_fingerprint",
        "reviewer",
        "sequence",
        "tenant",
    }
)


def fingerprint(key: VerifyKey) -> str:
    """A public key's fingerprint: lower-case hex SHA-256 of its 32 raw bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def text_problem(value: object, what: str, limit: int) -> str:
    """Why ``value`` is not a one-line text of 1..limit printable characters ("" if it is)."""
    if not isinstance(value, str) or not value.strip():
        return f"the {what} is empty"
    if len(value) > limit:
        return f"the {what} is longer than {limit} characters"
    if not value.isprintable():
        return f"the {what} holds a line break or a control character"
    return ""


@dataclass(frozen=True)
class Review:
    tenant: str
    device_id: str
    sequence: int  # the enrollment number (manifest "sequence")
    manifest_sha256: str  # hex SHA-256 of the manifest's canonical bytes
    decision: str  # approve | reject
    reason: str
    reviewer: str
    decided_wall_ms: int
    region_key_fingerprint: str

    @property
    def approved(self) -> bool:
        return self.decision == "approve"

    def to_json(self) -> dict[str, Any]:
        return {
            "decided_wall_ms": self.decided_wall_ms,
            "decision": self.decision,
            "device_id": self.device_id,
            "manifest_sha256": self.manifest_sha256,
            "reason": self.reason,
            "region_key_fingerprint": self.region_key_fingerprint,
            "reviewer": self.reviewer,
            "sequence": self.sequence,
            "tenant": self.tenant,
        }


def _problem(obj: dict[str, Any]) -> str:
    """What is wrong with a decision's fields ("" when nothing)."""
    if set(obj) != _KEYS:
        return "missing or unknown fields"
    for name in ("tenant", "device_id"):
        if not is_identifier(obj[name]):
            return f"{name} is not an identifier"
    for name in ("sequence", "decided_wall_ms"):
        if type(obj[name]) is not int or obj[name] < (1 if name == "sequence" else 0):
            return f"{name} is not a whole number"
    for name in ("manifest_sha256", "region_key_fingerprint"):
        if not isinstance(obj[name], str) or not _HEX64.fullmatch(obj[name]):
            return f"{name} is not 64 lower-case hex digits"
    if obj["decision"] not in DECISIONS:
        return "decision is neither approve nor reject"
    return text_problem(obj["reason"], "reason", REASON_MAX) or text_problem(
        obj["reviewer"], "reviewer", REVIEWER_MAX
    )


def seal_review(key: SigningKey, review: Review) -> bytes:
    """The signed message. Refuses fields a till would refuse (ValueError)."""
    body = review.to_json()
    problem = _problem(body)
    if problem:
        raise ValueError(f"not a valid enrollment review: {problem}")
    if review.region_key_fingerprint != fingerprint(key.verify_key):
        raise ValueError("region_key_fingerprint is not the signing key's fingerprint")
    signed = MAGIC + bytes([VERSION]) + canonical_bytes(body)
    return signed + key.sign(signed).signature


def open_review(data: bytes, key: VerifyKey) -> Review:
    """Size, magic and signature first; then the canonical JSON and every field.

    Raises :class:`wire.WireError` (``reason``: oversize, malformed, bad_signature,
    wrong_key: signed by ``key`` but naming another key's fingerprint).
    """
    signed = wire.verify_signed(data, MAGIC, key, MAX_BYTES, (VERSION,))
    try:
        obj = parse_canonical(signed[5:])
    except (NotJSONError, CanonicalFormError) as exc:
        raise wire.WireError("malformed", f"the review is not canonical JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise wire.WireError("malformed", "the review is not a JSON object")
    problem = _problem(obj)
    if problem:
        raise wire.WireError("malformed", f"the review's {problem}")
    if obj["region_key_fingerprint"] != fingerprint(key):
        raise wire.WireError(
            "wrong_key", "the review names another region key's fingerprint than its signer"
        )
    return Review(**obj)


def event_payload(review: Review, message: bytes) -> dict[str, Any]:
    """The ``enrollment.reviewed`` event: the signed message (hex) and what it says."""
    return {
        **review.to_json(),
        "message": message.hex(),
        "message_sha256": hashlib.sha256(message).hexdigest(),
    }


def from_event(payload: dict[str, Any], key: VerifyKey) -> Review:
    """Re-verify a recorded review with ``key``; its stated fields must be the message's.

    Raises :class:`wire.WireError` (as :func:`open_review`, or ``mismatch``).
    """
    try:
        message = bytes.fromhex(payload["message"])
    except (KeyError, TypeError, ValueError):
        raise wire.WireError("malformed", "the recorded review holds no message") from None
    review = open_review(message, key)
    stated = {k: payload.get(k) for k in review.to_json()}
    if stated != review.to_json():
        raise wire.WireError("mismatch", "the recorded fields differ from the signed review")
    return review
