"""The till's records in an inspection bundle: the event chain, receipts, self-tests,
enrollments and the region's reviews of them (steps 5-8 of compliance/verify.py).

Each check reads its member line by line or with a cap (compliance/bundle_reader.py),
raises ``Problem`` at the first failure and counts what passed in the verdict.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from appliance import events
from appliance.boundedio import MiB
from appliance.formats import review as review_format
from appliance.formats import wire
from appliance.formats.canonical import CanonicalFormError, canonical_bytes
from appliance.formats.chain import Event, line_hash_matches
from appliance.formats.inspection import REVIEW_FILE
from appliance.formats.receipt import RECEIPT_TYPES, key_id, parse_payload, tb2_fields_for_event
from compliance.bundle import SELFTEST_TYPE
from compliance.bundle_reader import Meter, json_line, lines, member
from compliance.verdict import Problem, Verdict

ENROLLMENT_LIMIT = 8 * MiB  # one enrollment.json (names and hashes, no images)


def check_events(
    zf: zipfile.ZipFile, manifest: dict[str, Any], key: VerifyKey, verdict: Verdict, meter: Meter
) -> tuple[list[Event], list[bytes]]:
    """Check the chain; return the receipt events (in order) for the receipt check."""
    info = manifest["events"]
    expected_seq, prev = info["first_seq"], info["prev_hash"]
    verdict.first_seq, verdict.last_seq = info["first_seq"], info["last_seq"]
    key_hex = key.encode().hex()
    receipts: list[Event] = []
    self_lines: list[bytes] = []
    count = 0
    for number, raw in lines(zf, "events.jsonl"):
        meter.add(len(raw) + 1)
        obj = json_line("events.jsonl", number, raw)
        try:
            event = Event.from_json(obj)
        except (KeyError, TypeError):
            raise Problem(f"events.jsonl line {number} is not a tillbox event") from None
        if set(obj) != set(event.envelope()) | {"hash"}:
            raise Problem(f"events.jsonl line {number} has unknown or missing fields")
        if event.seq != expected_seq:
            raise Problem(
                f"event chain broken: expected seq {expected_seq}, found "
                f"{event.seq} (an event was removed or inserted)"
            )
        if event.prev_hash != prev:
            raise Problem(
                f"event chain broken at seq {event.seq}: its previous-hash does not "
                "match the event before it"
            )
        # The line passed the full canonical check and has exactly the export fields.
        if not line_hash_matches(raw, event.hash):
            raise Problem(
                f"event chain broken at seq {event.seq}: its hash does not match "
                "its contents (the event was edited)"
            )
        if event.device_id != manifest["device_id"]:
            raise Problem(
                f"event {event.seq} belongs to device {event.device_id}, not "
                f"{manifest['device_id']}"
            )
        if event.type == events.DEVICE_INITIALISED and event.payload.get("public_key") != key_hex:
            raise Problem(
                "the log's device.initialised event names another public key: the "
                "bundle was signed by another device"
            )
        if event.type == events.DEVICE_INITIALISED and event.payload.get("tenant") != manifest.get(
            "tenant"
        ):
            raise Problem("the log's device.initialised event names another tenant")
        if event.type in RECEIPT_TYPES:
            receipts.append(event)
        elif event.type == SELFTEST_TYPE:
            self_lines.append(raw)
        prev = event.hash
        expected_seq += 1
        count += 1
    if count != info["count"] or expected_seq - 1 != info["last_seq"]:
        raise Problem(
            f"events.jsonl holds {count} events up to seq {expected_seq - 1}; the "
            f"manifest says {info['count']} up to {info['last_seq']} (events removed)"
        )
    if prev != info["last_hash"]:
        raise Problem("the last event's hash differs from the manifest's")
    verdict.events = count
    return receipts, self_lines


def check_receipts(
    zf: zipfile.ZipFile,
    manifest: dict[str, Any],
    key: VerifyKey,
    events: list[Event],
    verdict: Verdict,
    meter: Meter,
) -> None:
    signer = key_id(key)
    count = 0
    for number, raw in lines(zf, "receipts.jsonl"):
        count += 1
        if count > len(events):
            break
        event = events[count - 1]
        meter.add(len(raw) + 1)
        entry = json_line("receipts.jsonl", number, raw)
        payload = entry.get("payload", "")
        if entry.get("seq") != event.seq:
            raise Problem(
                f"receipts.jsonl line {number} is for seq {entry.get('seq')}, expected {event.seq}"
            )
        try:
            fields, signature, signed = parse_payload(payload)
        except ValueError as exc:
            raise Problem(f"receipt {event.payload['receipt_no']}: {exc}") from None
        if fields != tb2_fields_for_event(event, manifest["tenant"], signer):
            raise Problem(
                f"receipt {event.payload['receipt_no']} (seq {event.seq}) states "
                "other figures than its event in the log"
            )
        try:
            key.verify(signed.encode("ascii"), signature)
        except BadSignatureError:
            raise Problem(
                f"receipt {event.payload['receipt_no']} (seq {event.seq}): signature "
                "does not verify with the device key"
            ) from None
        verdict.receipts += 1
    if count != len(events):
        raise Problem(
            f"receipts.jsonl holds {count}{'+' if count > len(events) else ''} receipts; "
            f"the events hold {len(events)} sales and refunds"
        )


def check_selftests(zf: zipfile.ZipFile, expected: list[bytes]) -> None:
    found = [raw for _n, raw in lines(zf, "selftest.jsonl")]
    if found != expected:
        raise Problem("selftest.jsonl differs from the self-test events in events.jsonl")


def check_enrollments(
    zf: zipfile.ZipFile, manifest: dict[str, Any], key: VerifyKey
) -> dict[str, tuple[str, int]]:
    """Each enrollment folder (``enrollment/<NNNN>/``) -> (SHA-256 of its manifest's
    canonical bytes, its number), after checking its signature and file hashes."""
    hashes = {f["path"]: f["sha256"] for f in manifest["files"]}
    digests: dict[str, tuple[str, int]] = {}
    for name in sorted(hashes):
        if not (name.startswith("enrollment/") and name.endswith("/enrollment.json")):
            continue
        folder = name[: -len("enrollment.json")]
        try:
            signed = json.loads(member(zf, name, ENROLLMENT_LIMIT))
            body = canonical_bytes(signed["manifest"])
            key.verify(body, bytes.fromhex(signed["signature"]))
        except (ValueError, KeyError, TypeError, CanonicalFormError, BadSignatureError):
            raise Problem(
                f"{name}: enrollment signature does not verify with the device key"
            ) from None
        m = signed["manifest"]
        if m.get("public_key") != key.encode().hex():
            raise Problem(f"{name} names another public key: enrolled by another device")
        for item in [*m.get("permits", []), *m.get("photos", []), *m.get("files", [])]:
            path = folder + item["file"]
            if hashes.get(path) != item["sha256"]:
                raise Problem(f"{path} does not match the hash in its signed enrollment")
        digests[folder] = (hashlib.sha256(body).hexdigest(), m.get("sequence", 0))
    return digests


def check_reviews(
    zf: zipfile.ZipFile,
    manifest: dict[str, Any],
    names: list[str],
    digests: dict[str, tuple[str, int]],
    key_for: Callable[[str], VerifyKey],
    verdict: Verdict,
) -> None:
    """Each ``enrollment/<NNNN>/review.tber``: the region's signed review of that folder's
    manifest, for this device and tenant, naming the key that signed it.

    In a till's bundle the key is ``--region-key``, else ``sync/region.pub``, so the
    review's fingerprint ties sync/region.pub to a statement the region signed about
    this very enrollment (and that the till verified on receipt with the key it pins).
    """
    for name in sorted(n for n in names if n.startswith("enrollment/")):
        if not name.endswith("/" + REVIEW_FILE):
            continue
        folder = name[: -len(REVIEW_FILE)]
        if folder not in digests:
            raise Problem(f"{name} has no enrollment.json beside it: a review of nothing")
        key = key_for(name)
        verdict.region_key = key.encode().hex()
        try:
            review = review_format.open_review(member(zf, name, review_format.MAX_BYTES), key)
        except wire.WireError as exc:
            if exc.reason == "bad_signature":
                raise Problem(
                    f"{name}: the review's signature does not verify with the region key "
                    f"{verdict.region_key[:16]}... (altered, or signed by another key)"
                ) from None
            raise Problem(f"{name} is not a region review ({exc})") from None
        digest, sequence = digests[folder]
        if (review.device_id, review.tenant) != (manifest["device_id"], manifest["tenant"]):
            raise Problem(f"{name} reviews device {review.tenant}/{review.device_id}, not this one")
        if review.manifest_sha256 != digest or review.sequence != sequence:
            raise Problem(f"{name} reviews another enrollment than {folder}enrollment.json")
        verdict.reviews.append({"folder": folder.rstrip("/"), **review.to_json()})
