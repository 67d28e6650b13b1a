"""Customers' personal data: only with consent, encrypted per customer, erasable.

The log is append-only and hash-chained, so personal data can never be deleted
from it. Instead each customer gets a random pseudonymous id and a 32-byte key
kept OUTSIDE the log, in ``DIR/privacy/keys/<customer>.key`` (0600). The data
goes into the log only as a NaCl SecretBox ciphertext (``personal.recorded``),
after a ``consent.recorded`` event that names the purposes. Erasure deletes the
key (crypto-shredding) and records ``consent.erased``: the log stays intact and
verifiable, every copy of the ciphertext (backups, the region) becomes noise.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox
from nacl.utils import random as nacl_random

from appliance import queries
from appliance.datadir import DataDir
from appliance.errors import NotFound, RuleViolation
from appliance.events import CONSENT_ERASED, CONSENT_RECORDED, PERSONAL_RECORDED
from appliance.formats.canonical import canonical_bytes
from appliance.formats.chain import Event
from appliance.fsutil import atomic_write, fsync_dir
from appliance.log import EventLog
from appliance.till import Till

PRIVACY_TYPES = (CONSENT_RECORDED, PERSONAL_RECORDED, CONSENT_ERASED)

# What personal data is for; a store names one of the purposes consented to.
PURPOSES = ("receipt_email", "engraving", "signature", "marketing")
_CUSTOMER = re.compile(r"^c-[0-9a-f]{16}$")


def keys_dir(data_dir: DataDir) -> Path:
    return data_dir.root / "privacy" / "keys"


def key_path(data_dir: DataDir, customer: str) -> Path:
    if not _CUSTOMER.match(customer):
        raise RuleViolation(
            f"{customer!r} is not a customer id (c- and 16 hex digits); use the "
            "id `tillbox privacy consent` printed"
        )
    return keys_dir(data_dir) / f"{customer}.key"


def consent_state(log: EventLog, customer: str) -> dict[str, Any] | None:
    """The customer's consent: purposes, sync flag, erased; None if never recorded."""
    state: dict[str, Any] | None = None
    rows = queries.customer_events(log, (CONSENT_RECORDED, CONSENT_ERASED), customer)
    for seq, type_, payload in rows:
        if type_ == CONSENT_RECORDED:
            state = {
                "customer": customer,
                "seq": seq,
                "purposes": payload["purposes"],
                "sync_allowed": payload["sync_allowed"],
                "erased": False,
            }
        elif state is not None:
            state["erased"] = True
    return state


def record_consent(
    till: Till, purposes: list[str], *, sync_allowed: bool = False, wording: str = ""
) -> tuple[str, Event]:
    """A new customer id, its key (outside the log) and the ``consent.recorded`` event."""
    unknown = sorted(set(purposes) - set(PURPOSES))
    if not purposes or unknown:
        raise RuleViolation(
            f"consent needs purposes from {', '.join(PURPOSES)} "
            f"(unknown: {', '.join(unknown) or 'none given'})"
        )
    customer = f"c-{uuid.uuid4().hex[:16]}"
    path = key_path(till.data_dir, customer)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    # The key exists before the event: a crash in between leaves an unused key, never
    # a consent whose data cannot be stored.
    atomic_write(path, nacl_random(SecretBox.KEY_SIZE).hex().encode() + b"\n", mode=0o600)
    event = till.record(
        CONSENT_RECORDED,
        {
            "customer": customer,
            "purposes": sorted(set(purposes)),
            "sync_allowed": sync_allowed,
            "wording_sha256": _sha256(wording.encode("utf-8")) if wording else "",
        },
    )
    return customer, event


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _box(data_dir: DataDir, customer: str) -> SecretBox | None:
    try:
        return SecretBox(bytes.fromhex(key_path(data_dir, customer).read_text().strip()))
    except FileNotFoundError:
        return None


def store_personal(till: Till, customer: str, purpose: str, data: dict[str, Any]) -> Event:
    """Encrypt ``data`` with the customer's key and append it; refused without consent."""
    key_path(till.data_dir, customer)  # refuses anything that is not a customer id
    state = consent_state(till.log, customer)
    if state is None:
        raise RuleViolation(
            f"no consent recorded for {customer}; record it first "
            "(`tillbox privacy consent`): nothing was stored"
        )
    if state["erased"]:
        raise RuleViolation(
            f"{customer} asked to be erased; record a new consent to store "
            "data again: nothing was stored"
        )
    if purpose not in state["purposes"]:
        raise RuleViolation(
            f"{customer} consented to {', '.join(state['purposes'])}, not "
            f"{purpose}; ask for consent to that purpose: nothing was stored"
        )
    box = _box(till.data_dir, customer)
    if box is None:
        raise RuleViolation(
            f"the key of {customer} is missing (erased or lost); record a new "
            "consent: nothing was stored"
        )
    sealed = box.encrypt(canonical_bytes(data))
    return till.record(
        PERSONAL_RECORDED,
        {
            "customer": customer,
            "purpose": purpose,
            "consent_seq": state["seq"],
            "box": base64.b64encode(bytes(sealed)).decode("ascii"),
        },
    )


def read_personal(data_dir: DataDir, log: EventLog, customer: str) -> list[dict[str, Any]]:
    """The customer's data in log order; raise NotFound when erased or unknown."""
    box = _box(data_dir, customer)
    if box is None:
        raise NotFound(
            f"no readable data for {customer}: never recorded, or erased (its key was deleted)"
        )
    out = []
    for seq, _type, payload in queries.customer_events(log, (PERSONAL_RECORDED,), customer):
        try:
            plain = box.decrypt(base64.b64decode(payload["box"]))
        except (CryptoError, ValueError):
            raise NotFound(
                f"the data at seq {seq} does not open with {customer}'s key; "
                "the key file was replaced: restore it from a backup"
            ) from None
        out.append({"seq": seq, "purpose": payload["purpose"], "data": json.loads(plain)})
    return out


def erase(till: Till, customer: str, reason: str = "customer request") -> Event:
    """Crypto-shred: delete the key, then record ``consent.erased``."""
    state = consent_state(till.log, customer)
    if state is None:
        raise NotFound(f"no consent recorded for {customer}; check the customer id")
    path = key_path(till.data_dir, customer)
    if path.exists():
        # Overwrite before unlinking: on flash this is best effort, the unlink is what counts.
        atomic_write(path, b"0" * 64 + b"\n", mode=0o600)
        path.unlink()
        fsync_dir(path.parent)
    return till.record(CONSENT_ERASED, {"customer": customer, "reason": reason})


def sync_allowed(log: EventLog, customer: str) -> bool:
    """Whether the consent lets this customer's data leave the device (for the sync agent)."""
    state = consent_state(log, customer)
    return bool(state and state["sync_allowed"] and not state["erased"])


def export_personal(data_dir: DataDir, log: EventLog) -> dict[str, dict[str, Any]]:
    """Every customer's readable data (for an export that explicitly asks for it)."""
    out: dict[str, dict[str, Any]] = {}
    for customer in queries.customers(log, CONSENT_RECORDED):
        state = consent_state(log, customer)
        assert state is not None
        try:
            records = read_personal(data_dir, log, customer)
        except NotFound:
            records = []
        out[customer] = {**state, "records": records}
    return out


def key_for_region(
    data_dir: DataDir, log: EventLog, customer: str, region_public_key_hex: str
) -> bytes | None:
    """The customer's key sealed to the region (X25519 sealed box), or None.

    None unless the consent allows sync and was not erased: this is the one way
    personal data becomes readable off the device, so the sync agent sends it only
    for customers whose consent says so. The region opens it with the private half
    of its Ed25519 key converted to X25519 (``to_curve25519_private_key``).
    """
    from nacl.public import SealedBox
    from nacl.signing import VerifyKey

    if not sync_allowed(log, customer):
        return None
    try:
        key = bytes.fromhex(key_path(data_dir, customer).read_text().strip())
    except FileNotFoundError:
        return None
    region = VerifyKey(bytes.fromhex(region_public_key_hex)).to_curve25519_public_key()
    return bytes(SealedBox(region).encrypt(key))
