"""``tillbox inspect verify``: re-check an inspection bundle, stop at the first problem.

Order of checks (each needs the previous one to mean anything):
1. the file is a zip holding manifest.json and manifest.sig, every entry STORED
   (uncompressed, as the canonical container is): a deflated entry, a zip bomb's
   way in, is refused before a byte of it is inflated;
2. the key is the expected one (``--public-key``), else device.pub;
3. manifest.sig verifies over the manifest bytes (read with a cap) with that key,
   and only then is manifest.json parsed: canonical JSON in the known format,
   naming the same key;
4. the zip holds exactly the files the manifest lists, each with its size (the
   central directory's, before reading) and SHA-256 (read in chunks, never past
   the stated size);
5. events.jsonl: canonical lines, gapless seqs from the manifest's first seq,
   each linked to the previous hash, each hash recomputed, the count and the last
   hash as the manifest states; the device's own events name the same key;
6. receipts.jsonl: one entry per sale/refund event, each payload recomputed from
   its event (fields and previous-receipt hash) and its signature verified;
7. selftest.jsonl: exactly the selftest.recorded lines of events.jsonl;
8. enrollment manifests: signature by the same key, every referenced file's hash;
   each enrollment's review (``review.tber``): signed by the region key (pinned, else
   sync/region.pub), naming that key's fingerprint, this device and tenant and the
   SHA-256 of the manifest beside it;
9. unacked sync segments: id = SHA-256, signed by the device key;
10. the region's signed acks (sync/acks/*.tbak): each verifies with the region key
    (``--region-key``, else sync/region.pub), is a positive ack for this device, and
    names a segment in sync/segments.jsonl with the same seqs; the verdict states the
    highest seq they prove stored (``acked_seq``);
11. the zip container is the canonical one.

A package the region built (``tillbox edge inspect-package``) has ``region.pub`` at the
top: its manifest is checked with the region key instead (``--region-key``, else
region.pub), must say ``"built_by": "region"``, holds no receipts or sync records, and
lists the region's stored segments (``region/segments.jsonl``) in place of acks.

The verdict also says which parts were *proved* and which only checked against
keys the bundle itself carries (``proved``/``unproved``): the device key is pinned
only with ``--public-key``, the region acks only with ``--region-key``, and the
bundle is fresh only when it carries the inspector's ``--nonce``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from appliance import events
from appliance.boundedio import KEY_FILE_LIMIT, KiB, MiB, TooLarge, read_stream
from appliance.formats import inspection, wire, zipcanon
from appliance.formats import review as review_format
from appliance.formats.canonical import CanonicalFormError, canonical_bytes
from appliance.formats.chain import Event, line_hash_matches
from appliance.formats.inspection import (
    BUILT_BY_REGION,
    FORMAT,
    MANIFEST,
    REGION_SEGMENTS,
    REVIEW_FILE,
    SIGNATURE,
)
from appliance.formats.receipt import RECEIPT_TYPES, key_id, parse_payload, tb2_fields_for_event
from compliance.bundle import SELFTEST_TYPE

Progress = Callable[[int, int], None]
MANIFEST_LIMIT = 8 * MiB  # manifest.json: ~100 bytes a file; a real one is well under 1 MiB
SIGNATURE_LIMIT = 1 * KiB  # manifest.sig: 128 hex digits and a newline
LINE_LIMIT = 32 * MiB  # one line of a .jsonl (an event; a catalog is capped at 16 MiB)
ENROLLMENT_LIMIT = 8 * MiB  # one enrollment.json (names and hashes, no images)


class _Meter:
    """Work done over work to do, in bytes: hashing every file, then the chain and receipt
    passes over events.jsonl and receipts.jsonl. Reports at most every 256 KiB."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done, self.reported = progress, max(total, 1), 0, 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress and self.done - self.reported >= 1 << 18:
            self.reported = self.done
            self.progress(min(self.done, self.total), self.total)

    def finish(self) -> None:
        if self.progress:
            self.progress(self.total, self.total)


class Problem(Exception):
    """The first problem found: its message is the verdict's reason."""


@dataclass
class Verdict:
    ok: bool
    problem: str = ""
    device_id: str = ""
    public_key: str = ""
    files: int = 0
    events: int = 0
    receipts: int = 0
    first_seq: int = 0
    last_seq: int = 0
    acks: int = 0  # region-signed acks checked
    acked_seq: int = 0  # the highest seq those acks prove the region stored (0: none)
    region_key: str = ""  # the key they were checked with (hex)
    checks: list[str] = field(default_factory=list)
    tenant: str = ""
    exported_at_ms: int = 0  # signed: when the till wrote the bundle (its clock)
    nonce: str | None = None  # signed: the inspector's challenge it was exported with
    device_key_pinned: bool = False  # checked against --public-key, not device.pub only
    region_key_pinned: bool = False  # acks checked against --region-key
    nonce_asked: str | None = None
    unproved: list[str] = field(default_factory=list)  # asked for, not proved: exit 5
    built_by: str = "device"  # "region": a package the region built and signed
    reviews: list[dict[str, Any]] = field(default_factory=list)  # the region's, checked

    def proved(self) -> dict[str, str]:
        """What the checks proved, part by part, in words an inspector can quote."""
        region = self.built_by == BUILT_BY_REGION
        pinned = "proved with the pinned region key"
        if region:
            acks = (
                f"the region's signed package states it stored every event through seq "
                f"{self.acked_seq} (region/segments.jsonl): "
                + (pinned if self.region_key_pinned else "NOT proved; pass --region-key")
            )
        elif self.acks and self.region_key_pinned:
            acks = f"{pinned}: stored through seq {self.acked_seq}"
        elif self.acks:
            acks = (
                f"NOT proved (signed by the bundle's own sync/region.pub, which claims storage "
                f"through seq {self.acked_seq}); pass --region-key"
            )
        else:
            acks = "none in the bundle"
        if self.nonce_asked is None:
            nonce = "not asked (pass --nonce to prove the bundle was made after you asked)"
        elif self.nonce == self.nonce_asked:
            nonce = "matches --nonce: made after you asked"
        else:
            nonce = "NOT proved: " + ("absent" if self.nonce is None else "another nonce")
        if region:
            device = (
                "the package is signed by the region, not the device: its events chain from "
                "the device.initialised event naming device.pub, and its enrollments are "
                "device-signed; device.pub "
                + (
                    "is the pinned device key"
                    if self.device_key_pinned
                    else "is the region's word only; pass --public-key"
                )
            )
        elif self.device_key_pinned:
            device = "proved with the pinned device key"
        else:
            device = "checked with the bundle's own device.pub only; pass --public-key"
        out = {
            "built_by": (
                "the region (region.pub signed the manifest): "
                + (pinned if self.region_key_pinned else "NOT proved; pass --region-key")
            )
            if region
            else "the till (its device key signed the manifest)",
            "device_signature": device,
            "chain": "proved" if self.ok else "not proved",
            "region_acks": acks,
            "enrollment_review": self._review_text(),
            "nonce": nonce,
        }
        return out

    def _review_text(self) -> str:
        """The newest enrollment's review, and what its key check is worth."""
        if not self.reviews:
            return "none in the bundle"
        r = self.reviews[-1]
        day = _day(r["decided_wall_ms"])
        said = (
            f"enrollment {r['sequence']} approved by the region on {day} ({r['reviewer']})"
            if r["decision"] == "approve"
            else f"enrollment {r['sequence']} REJECTED by the region on {day} "
            f"({r['reviewer']}): {r['reason']}"
        )
        fp = r["region_key_fingerprint"]
        if self.region_key_pinned:
            return f"{said}: proved with the pinned region key (fingerprint {fp})"
        where = "region.pub" if self.built_by == BUILT_BY_REGION else "sync/region.pub"
        return (
            f"{said}: signed by {where}, whose fingerprint {fp} the review names (the till "
            "verified it with the key it pins); NOT proved unless that fingerprint is the "
            "region's: pass --region-key"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem": self.problem,
            "device_id": self.device_id,
            "public_key": self.public_key,
            "files": self.files,
            "events": self.events,
            "receipts": self.receipts,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "acks": self.acks,
            "acked_seq": self.acked_seq,
            "region_key": self.region_key,
            "checks": self.checks,
            "tenant": self.tenant,
            "exported_at_ms": self.exported_at_ms,
            "nonce": self.nonce,
            "proved": self.proved() if self.ok else {},
            "unproved": self.unproved,
            "complete": self.ok and not self.unproved,
            "built_by": self.built_by,
            "reviews": self.reviews,
        }


def _lines(zf: zipfile.ZipFile, name: str) -> Iterator[tuple[int, bytes]]:
    with zf.open(name) as f:
        number = 0
        while line := f.readline(LINE_LIMIT + 1):
            number += 1
            if len(line) > LINE_LIMIT:
                raise Problem(f"{name} line {number} is longer than {LINE_LIMIT >> 20} MiB")
            if not line.endswith(b"\n"):
                raise Problem(f"{name} line {number} has no line ending (truncated file)")
            yield number, line[:-1]


def _member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """A whole entry, read in chunks and never more than ``limit`` bytes."""
    with zf.open(name) as f:
        try:
            return read_stream(f, limit, name)
        except TooLarge as exc:
            raise Problem(str(exc)) from None


def _stored_only(infos: list[zipfile.ZipInfo]) -> None:
    """Every entry STORED, as the canonical container is: nothing is ever inflated."""
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise Problem(
                f"{info.filename} is compressed (method {info.compress_type}); a tillbox "
                "bundle stores every entry uncompressed: not a bundle as exported (a zip bomb?)"
            )


def _json_line(name: str, number: int, raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise Problem(f"{name} line {number} is not JSON") from None
    try:
        canonical = canonical_bytes(obj)
    except CanonicalFormError as exc:
        raise Problem(f"{name} line {number} cannot be canonical JSON ({exc})") from None
    if canonical != raw:
        raise Problem(f"{name} line {number} is not in canonical form (re-spelled?)")
    return obj


def verify_bundle(
    path: Path,
    *,
    public_key: str | None = None,
    region_key: str | None = None,
    nonce: str | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """Run every check; ``ok`` False with the first problem, never an exception.

    ``public_key``/``region_key`` (hex) are the device's and the region's keys as the
    inspector knows them; without them the keys inside the bundle are used, and the
    verdict says so. ``nonce`` is the challenge the inspector gave the export. What
    was asked (a region key, a nonce) but not proved is listed in ``unproved``.
    """
    verdict = Verdict(False, nonce_asked=nonce)
    try:
        _verify(Path(path), public_key, region_key, progress, verdict)
    except Problem as exc:
        verdict.problem = str(exc)
        return verdict
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        verdict.problem = f"the bundle is not a readable zip ({exc}); copy it again"
        return verdict
    except OSError as exc:
        verdict.problem = f"cannot read the bundle ({exc.strerror or exc}); check the path"
        return verdict
    except Exception as exc:  # noqa: BLE001 - a crafted zip (encrypted flag, odd method,
        # a field of the wrong type) must still give a verdict, never a traceback
        verdict.problem = f"the bundle is malformed ({type(exc).__name__}: {exc})"
        return verdict
    verdict.ok = True
    verdict.device_key_pinned = public_key is not None
    verdict.region_key_pinned = region_key is not None
    if nonce is not None and verdict.nonce != nonce:
        verdict.unproved.append(
            "the bundle carries no nonce (made before you asked, or without --nonce)"
            if verdict.nonce is None
            else "the bundle carries another nonce than --nonce: it was made for another request"
        )
    if region_key is not None and not verdict.acks and verdict.built_by != BUILT_BY_REGION:
        verdict.unproved.append(
            "--region-key was given but the bundle holds no region acks: nothing proves "
            "what the region stored"
        )
    return verdict


def _verify(
    path: Path,
    expected_key: str | None,
    expected_region: str | None,
    progress: Progress | None,
    verdict: Verdict,
) -> None:
    if not path.is_file():
        raise Problem(f"no file at {path}; give the path of the bundle .zip")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(names) != len(set(names)):
            raise Problem("the zip holds two entries with the same name (a file was added)")
        if MANIFEST not in names or SIGNATURE not in names:
            raise Problem("manifest.json or manifest.sig is missing: not an inspection bundle")
        _stored_only(infos)
        key = _key(expected_key, zf, names)
        verdict.checks.append("public key")
        # A region-built package carries its signer at the top; which key signs is
        # decided here, before anything is parsed, and the signed manifest must agree.
        region_built = inspection.REGION_PUB in names
        signer = _package_key(zf, expected_region) if region_built else key
        # The signature first: nothing of the manifest is parsed before it verifies.
        manifest_bytes = _member(zf, MANIFEST, MANIFEST_LIMIT)
        sig_bytes = _member(zf, SIGNATURE, SIGNATURE_LIMIT)
        try:
            signer.verify(manifest_bytes, bytes.fromhex(sig_bytes.decode("ascii").strip()))
        except (ValueError, BadSignatureError):
            raise Problem(
                "manifest signature does not verify with the region key: the manifest was "
                "edited or signed by another region"
                if region_built
                else "manifest signature does not verify with the device key: the "
                "manifest was edited or signed by another device"
            ) from None
        verdict.checks.append("manifest signature")
        manifest = _manifest(manifest_bytes)
        _builder(manifest, region_built, signer, verdict)
        verdict.device_id = manifest["device_id"]
        verdict.public_key = manifest["public_key"]
        verdict.tenant = manifest["tenant"]
        verdict.exported_at_ms = manifest["exported_at_ms"]
        verdict.nonce = manifest["nonce"]
        if str(manifest["public_key"]).lower() != key.encode().hex():
            raise Problem("device.pub differs from the manifest's public key")
        sizes = {f["path"]: int(f["size"]) for f in manifest["files"]}
        meter = _Meter(
            progress,
            sum(sizes.values()) + sizes.get("events.jsonl", 0) + sizes.get("receipts.jsonl", 0),
        )
        crcs = _file_hashes(zf, manifest, names, meter)
        for name, raw in ((MANIFEST, manifest_bytes), (SIGNATURE, sig_bytes)):
            crcs[name] = (zlib.crc32(raw), len(raw))
        verdict.files = len(manifest["files"])
        verdict.checks.append("file hashes")
        receipt_events, self_lines = _events(zf, manifest, key, verdict, meter)
        verdict.checks.append("event chain")
        if region_built:
            _region_only(names)
        else:
            _receipts(zf, manifest, key, receipt_events, verdict, meter)
            verdict.checks.append("receipt signatures")
        _selftests(zf, self_lines)
        verdict.checks.append("self-test history")
        digests = _enrollments(zf, manifest, key)
        verdict.checks.append("enrollment manifests")
        _reviews(
            zf,
            manifest,
            names,
            digests,
            (lambda first: signer)
            if region_built
            else (lambda first: _region_key(zf, names, expected_region, first)),
            verdict,
        )
        verdict.checks.append("enrollment reviews")
        if region_built:
            _region_segments(zf, manifest, names, verdict)
            verdict.checks.append("region segments")
        else:
            records = _segments(zf, key, names)
            verdict.checks.append("sync segments")
            _acks(zf, manifest, names, records, expected_region, verdict)
            verdict.checks.append("region acks")
        _container(path, [*sorted(set(names) - {MANIFEST, SIGNATURE}), MANIFEST, SIGNATURE], crcs)
        verdict.checks.append("zip container")
        meter.finish()


def _day(wall_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(wall_ms / 1000, UTC).date().isoformat()


def _package_key(zf: zipfile.ZipFile, expected: str | None) -> VerifyKey:
    """A region-built package's signer: the inspector's region key (region.pub must be
    it), else region.pub itself (the verdict then says it is not proved)."""
    raw = _member(zf, inspection.REGION_PUB, KEY_FILE_LIMIT)
    stated = raw.decode("ascii", "replace").strip().lower()
    if expected is not None and expected.strip().lower() != stated:
        raise Problem(
            f"the package is signed by region key {stated[:16]}..., not the expected "
            f"{expected.strip().lower()[:16]}...: a package from another region"
        )
    try:
        return VerifyKey(bytes.fromhex(stated))
    except (ValueError, TypeError):
        raise Problem("region.pub is not 64 hex digits") from None


def _builder(
    manifest: dict[str, Any], region_built: bool, signer: VerifyKey, verdict: Verdict
) -> None:
    """The signed manifest says who built it, and that must be who signed it."""
    built_by = manifest.get("built_by", "device")
    if region_built != (built_by == BUILT_BY_REGION) or built_by not in ("device", "region"):
        raise Problem(
            f"the manifest says it was built by {built_by!r}, but "
            + ("the region key signed it" if region_built else "the device key signed it")
        )
    if not region_built:
        return
    if str(manifest.get("region_public_key", "")).lower() != signer.encode().hex():
        raise Problem("region.pub differs from the manifest's region_public_key")
    verdict.built_by = BUILT_BY_REGION
    verdict.region_key = signer.encode().hex()


def _region_only(names: list[str]) -> None:
    """A region-built package has no till-side records: nothing unchecked rides along."""
    for name in names:
        if name == "receipts.jsonl" or name.startswith("sync/"):
            raise Problem(
                f"{name} is in a region-built package; the region never writes it (receipts "
                "and sync records come only from the till's own bundle)"
            )


def _region_segments(
    zf: zipfile.ZipFile, manifest: dict[str, Any], names: list[str], verdict: Verdict
) -> None:
    """region/segments.jsonl: the stored segments, gapless from seq 1 to the last event."""
    if REGION_SEGMENTS not in names:
        raise Problem(f"{REGION_SEGMENTS} is missing from the region-built package")
    expected = 1
    for number, raw in _lines(zf, REGION_SEGMENTS):
        record = _json_line(REGION_SEGMENTS, number, raw)
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


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise Problem("manifest.json is not JSON (edited?)") from None
    try:
        if canonical_bytes(manifest) != raw:
            raise Problem("manifest.json is not in canonical form (edited?)")
    except CanonicalFormError as exc:
        raise Problem(f"manifest.json cannot be canonical JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Problem(f"manifest format is not {FORMAT}: not a bundle this tool reads")
    for k in ("device_id", "tenant", "public_key", "exported_at_ms", "nonce", "events", "files"):
        if k not in manifest:
            raise Problem(f"manifest.json has no {k!r}: not a complete bundle")
    if not isinstance(manifest["exported_at_ms"], int) or not (
        manifest["nonce"] is None or isinstance(manifest["nonce"], str)
    ):
        raise Problem("manifest.json's exported_at_ms or nonce has the wrong type")
    return manifest


def _key(expected: str | None, zf: zipfile.ZipFile, names: list[str]) -> VerifyKey:
    """The key the manifest must verify with: the inspector's, which device.pub must be."""
    if "device.pub" not in names:
        raise Problem("device.pub is missing: not an inspection bundle")
    stated = _member(zf, "device.pub", KEY_FILE_LIMIT).decode("ascii", "replace").strip().lower()
    if expected is not None and expected.strip().lower() != stated:
        raise Problem(
            f"bundle is signed by device key {stated[:16]}..., not the expected "
            f"{expected.strip().lower()[:16]}...: a bundle from another device"
        )
    try:
        return VerifyKey(bytes.fromhex(stated))
    except (ValueError, TypeError):
        raise Problem("device.pub is not 64 hex digits") from None


def _file_hashes(
    zf: zipfile.ZipFile, manifest: dict[str, Any], names: list[str], meter: _Meter
) -> dict[str, tuple[int, int]]:
    """Check every listed file's SHA-256 and size; return each entry's (CRC-32, size)."""
    listed = {f["path"]: f for f in manifest["files"]}
    crcs: dict[str, tuple[int, int]] = {}
    extra = sorted(set(names) - set(listed) - {MANIFEST, SIGNATURE})
    if extra:
        raise Problem(f"{extra[0]} is in the zip but not in the signed manifest (added later)")
    missing = sorted(set(listed) - set(names))
    if missing:
        raise Problem(f"{missing[0]} is listed in the manifest but missing from the zip")
    for name in sorted(listed):
        stated = listed[name]["size"]
        if zf.getinfo(name).file_size != stated:
            raise Problem(
                f"{name} does not match its SHA-256 and size in the manifest "
                f"({zf.getinfo(name).file_size} bytes, {stated} stated): the file was changed"
            )
        h = hashlib.sha256()
        size = crc = 0
        try:
            with zf.open(name) as f:
                while size <= stated and (chunk := f.read(1 << 20)):
                    h.update(chunk)
                    crc = zlib.crc32(chunk, crc)
                    size += len(chunk)
                    meter.add(len(chunk))
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
        ) as exc:  # CRC mismatch: the zip bytes changed
            raise Problem(
                f"{name} cannot be read from the zip ({exc}): the file was altered"
            ) from None
        if h.hexdigest() != listed[name]["sha256"] or size != listed[name]["size"]:
            raise Problem(
                f"{name} does not match its SHA-256 in the manifest: the file was changed"
            )
        crcs[name] = (crc, size)
    return crcs


def _events(
    zf: zipfile.ZipFile, manifest: dict[str, Any], key: VerifyKey, verdict: Verdict, meter: _Meter
) -> tuple[list[Event], list[bytes]]:
    """Check the chain; return the receipt events (in order) for the receipt check."""
    info = manifest["events"]
    expected_seq, prev = info["first_seq"], info["prev_hash"]
    verdict.first_seq, verdict.last_seq = info["first_seq"], info["last_seq"]
    key_hex = key.encode().hex()
    receipts: list[Event] = []
    self_lines: list[bytes] = []
    count = 0
    for number, raw in _lines(zf, "events.jsonl"):
        meter.add(len(raw) + 1)
        obj = _json_line("events.jsonl", number, raw)
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


def _receipts(
    zf: zipfile.ZipFile,
    manifest: dict[str, Any],
    key: VerifyKey,
    events: list[Event],
    verdict: Verdict,
    meter: _Meter,
) -> None:
    signer = key_id(key)
    count = 0
    for number, raw in _lines(zf, "receipts.jsonl"):
        count += 1
        if count > len(events):
            break
        event = events[count - 1]
        meter.add(len(raw) + 1)
        entry = _json_line("receipts.jsonl", number, raw)
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


def _selftests(zf: zipfile.ZipFile, expected: list[bytes]) -> None:
    found = [raw for _n, raw in _lines(zf, "selftest.jsonl")]
    if found != expected:
        raise Problem("selftest.jsonl differs from the self-test events in events.jsonl")


def _enrollments(
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
            signed = json.loads(_member(zf, name, ENROLLMENT_LIMIT))
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


def _reviews(
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
            review = review_format.open_review(_member(zf, name, review_format.MAX_BYTES), key)
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


SEGMENT_MAGIC = b"TBSG"  # the sync agent's signed segment (docs/formats.md, segments)


def _segments(zf: zipfile.ZipFile, key: VerifyKey, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each exported unacked segment: its id is its SHA-256 and the device signed it.

    Returns the segments.jsonl records by segment id (for the ack check).
    """
    records: dict[str, dict[str, Any]] = {}
    if "sync/segments.jsonl" not in names:
        return records
    for number, raw in _lines(zf, "sync/segments.jsonl"):
        record = _json_line("sync/segments.jsonl", number, raw)
        records[str(record.get("id"))] = record
        if not record.get("file"):
            continue
        if record["file"] not in names:
            raise Problem(f"{record['file']} is listed in sync/segments.jsonl but missing")
        data = _member(zf, record["file"], zf.getinfo(record["file"]).file_size)
        if hashlib.sha256(data).hexdigest() != record["id"]:
            raise Problem(f"{record['file']}: its SHA-256 is not the segment id recorded")
        try:
            if data[:4] != SEGMENT_MAGIC:
                raise BadSignatureError("magic")
            key.verify(data[:-64], data[-64:])
        except (BadSignatureError, ValueError):
            raise Problem(
                f"{record['file']}: the segment is not signed by this device's key"
            ) from None
    return records


ACK_DIR = "sync/acks/"
REGION_PUB = "sync/region.pub"


def _region_key(
    zf: zipfile.ZipFile, names: list[str], expected: str | None, first_ack: str
) -> VerifyKey:
    """The region key the acks must verify with: the inspector's, else the bundle's."""
    stated = None
    if REGION_PUB in names:
        stated = _member(zf, REGION_PUB, KEY_FILE_LIMIT).decode("ascii", "replace").strip().lower()
    if expected is not None:
        expected = expected.strip().lower()
        if stated is not None and stated != expected:
            raise Problem(
                f"{REGION_PUB} is key {stated[:16]}..., not the expected region key "
                f"{expected[:16]}...: the acks were not signed by that region"
            )
        stated = expected
    if stated is None:
        raise Problem(
            f"{first_ack} cannot be checked: the bundle has no {REGION_PUB}; "
            "pass --region-key with the region's public key"
        )
    try:
        return VerifyKey(bytes.fromhex(stated))
    except (ValueError, TypeError):
        raise Problem(f"the region key {stated[:16]}... is not 64 hex digits") from None


def _acks(
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
            verdict.region_key = _region_key(zf, names, expected_region, "").encode().hex()
        return
    key = _region_key(zf, names, expected_region, acks[0])
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
        if name != f"{ACK_DIR}{ack.segment}.tbak" or record.get("ack") != name:
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


def _container(path: Path, order: list[str], crcs: dict[str, tuple[int, int]]) -> None:
    """The archive must be exactly the canonical ZIP of its own entries (zipcanon).

    Every content byte is already checked against the manifest (read by zipfile from
    the offsets the central directory gives); this checks every other byte: each local
    header at its canonical offset, then the central directory and end record, and
    nothing after them. So headers, timestamps, attributes, the order of entries and
    anything appended or hidden between entries are covered too.
    """
    central = b""
    offset = 0
    with path.open("rb") as f:
        for name in order:
            crc, size = crcs[name]
            head = zipcanon.local_header(name, crc, size)
            f.seek(offset)
            if f.read(len(head)) != head:
                raise Problem(
                    f"the zip header of {name} differs from its canonical form (a header, "
                    "timestamp or attribute was changed, or the entries were reordered)"
                )
            central += zipcanon.central_header(name, crc, size, offset)
            offset += len(head) + size
        tail = central + zipcanon.end_record(len(order), len(central), offset)
        f.seek(offset)
        if f.read(len(tail) + 1) != tail:
            raise Problem(
                "the zip container differs from its canonical form (the central directory "
                "or end record was changed, or bytes were added)"
            )
