"""The region's part of an inspection bundle (steps 9-10 of compliance/verify.py).

In a till's bundle: the sealed segments not yet acked (each signed by the device key)
and the region's signed acks of the others, checked with the region key (pinned with
``--region-key``, else sync/region.pub). In a package the region built: no till-side
records at all, and the segments it stored, gapless to the last event.
"""

from __future__ import annotations

import hashlib
import zipfile
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from appliance.formats import inspection, wire
from appliance.formats.inspection import REGION_SEGMENTS, SYNC_SEGMENTS
from compliance.bundle_reader import json_line, lines, member
from compliance.verdict import Problem, Verdict
from compliance.verify_keys import REGION_PUB, region_key_for

ACK_DIR = inspection.SYNC_ACK_DIR


def region_only(names: list[str]) -> None:
    """A region-built package has no till-side records: nothing unchecked rides along."""
    for name in names:
        if name == "receipts.jsonl" or name.startswith("sync/"):
            raise Problem(
                f"{name} is in a region-built package; the region never writes it (receipts "
                "and sync records come only from the till's own bundle)"
            )


def region_segments(
    zf: zipfile.ZipFile, manifest: dict[str, Any], names: list[str], verdict: Verdict
) -> None:
    """region/segments.jsonl: the stored segments, gapless from seq 1 to the last event."""
    if REGION_SEGMENTS not in names:
        raise Problem(f"{REGION_SEGMENTS} is missing from the region-built package")
    expected = 1
    for number, raw in lines(zf, REGION_SEGMENTS):
        record = json_line(REGION_SEGMENTS, number, raw)
        first, last = record.get("first_seq"), record.get("last_seq")
        if type(first) is not int or type(last) is not int or first != expected or last < first:
            raise Problem(
                f"{REGION_SEGMENTS} line {number} holds seqs {first}-{last}; expected a "
                f"segment from seq {expected} (segments removed or reordered)"
            )
        expected = last + 1
    if expected - 1 != manifest["events"]["last_seq"]:
        raise Problem(
            f"{REGION_SEGMENTS} covers seqs up to {expected - 1}; the package's events end at "
            f"{manifest['events']['last_seq']}"
        )
    verdict.acked_seq = expected - 1


def check_segments(
    zf: zipfile.ZipFile, key: VerifyKey, names: list[str]
) -> dict[str, dict[str, Any]]:
    """Each exported unacked segment: its id is its SHA-256 and the device signed it.

    Returns the segments.jsonl records by segment id (for the ack check).
    """
    records: dict[str, dict[str, Any]] = {}
    if SYNC_SEGMENTS not in names:
        return records
    for number, raw in lines(zf, SYNC_SEGMENTS):
        record = json_line(SYNC_SEGMENTS, number, raw)
        records[str(record.get("id"))] = record
        if not record.get("file"):
            continue
        if record["file"] not in names:
            raise Problem(f"{record['file']} is listed in sync/segments.jsonl but missing")
        data = member(zf, record["file"], zf.getinfo(record["file"]).file_size)
        if hashlib.sha256(data).hexdigest() != record["id"]:
            raise Problem(f"{record['file']}: its SHA-256 is not the segment id recorded")
        try:
            if data[:4] != wire.SEGMENT_MAGIC:
                raise BadSignatureError("magic")
            key.verify(data[:-64], data[-64:])
        except (BadSignatureError, ValueError):
            raise Problem(
                f"{record['file']}: the segment is not signed by this device's key"
            ) from None
    return records


def check_acks(
    zf: zipfile.ZipFile,
    manifest: dict[str, Any],
    names: list[str],
    records: dict[str, dict[str, Any]],
    expected_region: str | None,
    verdict: Verdict,
) -> None:
    """The region's signed acks: the proof that it stored the till's segments.

    The region stores a device's segments only in chain order, so an ack of a
    segment proves every earlier one stored too: the verdict's ``acked_seq`` is
    the highest ``last_seq`` a valid ack names.
    """
    for record in records.values():
        if record.get("ack") and record["ack"] not in names:
            raise Problem(f"{record['ack']} is listed in sync/segments.jsonl but missing")
    acks = sorted(n for n in names if n.startswith(ACK_DIR) and n.endswith(".tbak"))
    if not acks:
        if expected_region is not None or REGION_PUB in names:
            verdict.region_key = region_key_for(zf, names, expected_region, "").encode().hex()
        return
    key = region_key_for(zf, names, expected_region, acks[0])
    verdict.region_key = key.encode().hex()
    device = manifest["device_id"]
    for name in acks:
        try:
            ack = wire.open_ack(zf.read(name), key)
        except wire.WireError as exc:
            if exc.reason == "bad_signature":
                raise Problem(
                    f"{name}: the ack's signature does not verify with the region key "
                    f"{verdict.region_key[:16]}... (altered, or signed by another key)"
                ) from None
            raise Problem(f"{name} is not a region ack ({exc})") from None
        if ack.status != "ack":
            raise Problem(f"{name} is a NACK ({ack.reason}), not proof of storage")
        if ack.device != device:
            raise Problem(f"{name} is an ack for device {ack.device}, not {device}")
        record = records.get(ack.segment)
        if record is None:
            raise Problem(
                f"{name} acks segment {ack.segment[:16]}..., which sync/segments.jsonl "
                "does not list"
            )
        if name != inspection.sync_ack_name(ack.segment) or record.get("ack") != name:
            raise Problem(f"{name} is filed under another segment than the one it acks")
        if (ack.first_seq, ack.last_seq) != (record.get("first_seq"), record.get("last_seq")):
            raise Problem(
                f"{name} acks seqs {ack.first_seq}-{ack.last_seq}; sync/segments.jsonl "
                f"says that segment holds {record.get('first_seq')}-{record.get('last_seq')}"
            )
        if record.get("acked_ms") is None:
            raise Problem(f"{name} acks a segment sync/segments.jsonl lists as not acked")
        verdict.acks += 1
        verdict.acked_seq = max(verdict.acked_seq, ack.last_seq)
