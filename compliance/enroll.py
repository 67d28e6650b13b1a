"""Onboarding: capture who trades, with which permits and equipment; sign it; log it.

An enrollment is immutable. Its files are copied into
``DIR/compliance/enrollment/<NNNN>/`` (read-only), named by content hash, and
described by a manifest (docs/formats.md, "Enrollment manifest") that holds
every file's SHA-256, the attestation, the device id and public key. The
manifest is signed by the device key and appended to the log as
``enrollment.signed``; re-enrolling (a renewed permit) adds a new one, never
edits the old. ``tillbox enrollment export`` packs the latest one with its media for
the region (:mod:`appliance.formats.enrollment`), where a reviewer approves or rejects
it (``tillbox edge enrollment import|review``; ``tillbox edge enroll`` registers
``device_id`` + ``public_key`` first).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from appliance import keys, queries
from appliance.boundedio import SCAN_LIMIT, read_bounded
from appliance.datadir import DataDir
from appliance.errors import RuleViolation, TillError
from appliance.events import ENROLLMENT_SIGNED
from appliance.formats.canonical import canonical_bytes
from appliance.formats.enrollment import FORMAT
from appliance.fsutil import atomic_write, atomic_write_stream, fsync_dir
from appliance.log import EventLog
from appliance.till import Till
from compliance.probes import Probes

ASSET_TAG_PREFIX = "TBA1"  # QR label payload: TBA1*<device>*<tag>
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def enrollment_root(data_dir: DataDir) -> Path:
    return data_dir.root / "compliance" / "enrollment"


def enrollment_folder(data_dir: DataDir, sequence: int) -> Path:
    return enrollment_root(data_dir) / f"{sequence:04d}"


@dataclass
class PermitInput:
    kind: str
    number: str
    expires: str  # YYYY-MM-DD
    source: str  # a file path, or "camera"


@dataclass
class PhotoInput:
    label: str
    source: str  # a file path, or "camera"


@dataclass
class EnrollmentInput:
    operator: str
    business: str
    registration: str = ""
    address: str = ""
    contact: str = ""
    permits: list[PermitInput] = field(default_factory=list)
    photos: list[PhotoInput] = field(default_factory=list)
    attestation: str = ""
    confirmed: bool = False
    assets: list[tuple[str, str]] = field(default_factory=list)  # (tag or "", description)


def parse_permit(text: str) -> PermitInput:
    """KIND:NUMBER:YYYY-MM-DD:FILE (FILE may be ``camera``; it may contain colons)."""
    parts = text.split(":", 3)
    if len(parts) != 4 or not all(parts):
        raise TillError(
            f"--permit {text!r} must be KIND:NUMBER:YYYY-MM-DD:FILE (or :camera), "
            "e.g. trading:TP-2291:2026-12-31:permit.pdf"
        )
    kind, number, expires, source = parts
    try:
        date.fromisoformat(expires)
    except ValueError:
        raise TillError(f"permit expiry {expires!r} must be a date YYYY-MM-DD") from None
    return PermitInput(kind, number, expires, source)


def parse_photo(text: str) -> PhotoInput:
    label, sep, source = text.partition(":")
    if not sep or not label or not source:
        raise TillError(
            f"--photo {text!r} must be LABEL:FILE (or LABEL:camera), e.g. engraver:engraver.jpg"
        )
    return PhotoInput(label, source)


def parse_asset(text: str) -> tuple[str, str]:
    tag, sep, description = text.partition(":")
    if not sep:
        return "", text
    if tag and not re.fullmatch(r"[A-Za-z0-9-]{1,32}", tag):
        raise TillError(f"asset tag {tag!r} must be 1-32 letters, digits or -")
    return tag, description


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_source(source: str, what: str, probes: Probes | None) -> tuple[bytes, str, str]:
    """(bytes, original name, 'file'|'camera')."""
    if source == "camera":
        if probes is None:
            raise TillError(f"{what}: no camera available; pass a file instead of camera")
        frame, why = probes.capture()
        if frame is None:
            raise TillError(
                f"{what}: the camera captured nothing ({why}); check the camera or pass a file"
            )
        return frame, "capture.jpg", "camera"
    path = Path(source).expanduser()
    data = read_bounded(path, SCAN_LIMIT, what)
    if not data:
        raise TillError(f"{what}: {path} is empty; scan it again")
    return data, path.name, "file"


def _location(till: Till) -> tuple[float | None, float | None]:
    loc = till.config.section("location")
    lat, lon = loc.get("latitude"), loc.get("longitude")
    if lat in (None, 0, 0.0) and lon in (None, 0, 0.0):
        return None, None  # 0,0 is the default: "not set", not the Gulf of Guinea
    return float(lat), float(lon)


def enroll(
    till: Till, data: EnrollmentInput, probes: Probes | None = None, *, print_labels: bool = True
) -> dict[str, Any]:
    """Validate everything first, then write files, sign, log. Nothing half-written."""
    from compliance import photos

    if not data.operator.strip() or not data.business.strip():
        raise RuleViolation("operator and business names are required (--operator, --business)")
    if not data.attestation.strip():
        raise RuleViolation("the self-attestation text is required (--attestation TEXT)")
    if not data.confirmed:
        raise RuleViolation(
            "the operator must confirm the attestation (--confirm, or answer "
            "yes): nothing was recorded"
        )
    if not data.permits:
        raise RuleViolation(
            "at least one permit is required (--permit "
            "KIND:NUMBER:YYYY-MM-DD:FILE): nothing was recorded"
        )
    key = keys.load_signing_key(till.data_dir.private_key_path)
    public_hex = key.verify_key.encode().hex()
    if public_hex != till.public_key_hex():
        raise TillError(
            "keys/device.pub does not match keys/device.key; fix the key pair "
            "(`tillbox selftest` says how) before enrolling"
        )
    now_ms = photos.now_utc().timestamp()
    created_ms = int(now_ms * 1000)
    lat, lon = _location(till)
    staged: dict[str, bytes] = {}  # relative path -> bytes

    def stage(sub: str, name: str, blob: bytes) -> tuple[str, str]:
        digest = _sha256(blob)
        safe = _SAFE.sub("_", name)[-60:] or "file"
        rel = f"{sub}/{digest[:16]}-{safe}"
        staged[rel] = blob
        return rel, digest

    permits = []
    for p in data.permits:
        blob, name, source = _read_source(p.source, f"permit {p.number}", probes)
        if source == "camera" or Path(name).suffix.lower() in photos.IMAGE_SUFFIXES:
            photos.check_image(blob, f"permit scan {name}")
        if source == "camera" and not photos.has_capture_exif(blob):
            blob = photos.geotag_jpeg(
                blob,
                when=photos.now_utc(),
                latitude=lat,
                longitude=lon,
                description=f"permit {p.number}",
            )
        if source == "camera":
            name = f"permit-{p.number}.jpg"
        rel, digest = stage("permits", name, blob)
        permits.append(
            {
                "kind": p.kind,
                "number": p.number,
                "expires": p.expires,
                "file": rel,
                "sha256": digest,
                "size": len(blob),
                "source": source,
            }
        )
    photo_entries = []
    for ph in data.photos:
        blob, name, source = _read_source(ph.source, f"photo {ph.label}", probes)
        photos.check_image(blob, f"photo {name}")
        if source == "camera" and not photos.has_capture_exif(blob):
            blob = photos.geotag_jpeg(
                blob, when=photos.now_utc(), latitude=lat, longitude=lon, description=ph.label
            )
        if source == "camera":
            name = f"{ph.label}.jpg"
        rel, digest = stage("photos", name, blob)
        photo_entries.append(
            {"label": ph.label, "file": rel, "sha256": digest, "size": len(blob), "source": source}
        )
    attestation = data.attestation.strip()
    att_bytes = attestation.encode("utf-8") + b"\n"
    staged["attestation.txt"] = att_bytes
    assets = []
    for index, (tag, description) in enumerate(data.assets, 1):
        assets.append({"tag": tag or f"{till.device_id}-A{index:02d}", "description": description})
    tags = [a["tag"] for a in assets]
    if len(tags) != len(set(tags)):
        raise RuleViolation("asset tags must be distinct; give each piece of equipment its own")

    sequence = _next_sequence(till)
    manifest = {
        "format": FORMAT,
        "sequence": sequence,
        "device_id": till.device_id,
        "tenant": str(till.config.section("device").get("tenant", "")),
        "public_key": public_hex,
        "created_wall_ms": created_ms,
        "operator": {"name": data.operator.strip(), "contact": data.contact.strip()},
        "business": {
            "name": data.business.strip(),
            "registration": data.registration.strip(),
            "address": data.address.strip(),
        },
        "location": {
            "latitude": "" if lat is None else f"{lat:.6f}",
            "longitude": "" if lon is None else f"{lon:.6f}",
        },
        "permits": permits,
        "photos": photo_entries,
        "attestation": {
            "text": attestation,
            "sha256": _sha256(att_bytes),
            "confirmed_by": data.operator.strip(),
            "confirmed_wall_ms": created_ms,
        },
        "files": [{"file": "attestation.txt", "sha256": _sha256(att_bytes)}],
        "assets": assets,
    }
    body = canonical_bytes(manifest)
    signature = key.sign(body).signature.hex()
    signed = {"manifest": manifest, "signature": signature}
    staged["enrollment.json"] = canonical_bytes(signed) + b"\n"
    folder = _write_folder(enrollment_folder(till.data_dir, sequence), staged)
    try:
        event = till.record(ENROLLMENT_SIGNED, {**signed, "manifest_sha256": _sha256(body)})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no log entry: no enrollment on disk
        raise
    printed, label_problems = [], []
    if print_labels and probes is not None:
        for asset in assets:
            problem = probes.print_label(
                f"{ASSET_TAG_PREFIX}*{till.device_id}*{asset['tag']}",
                [asset["tag"], asset["description"][:40], till.device_id],
            )
            (label_problems if problem else printed).append(problem or asset["tag"])
    return {
        "sequence": sequence,
        "seq": event.seq,
        "folder": str(folder),
        "manifest_sha256": _sha256(body),
        "signature": signature,
        "device_id": till.device_id,
        "public_key": public_hex,
        "permits": len(permits),
        "photos": len(photo_entries),
        "assets": tags,
        "labels_printed": printed,
        "label_problems": sorted(set(label_problems)),
    }


def _next_sequence(till: Till) -> int:
    recorded = queries.count_events(till.log, ENROLLMENT_SIGNED)
    root = enrollment_root(till.data_dir)
    on_disk = [int(p.name) for p in root.glob("[0-9][0-9][0-9][0-9]")] if root.is_dir() else []
    return max([recorded, *on_disk]) + 1


def _write_folder(folder: Path, staged: dict[str, bytes]) -> Path:
    """Write into a hidden temp folder, fsync, then rename it into place (all or nothing)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, blob in staged.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, blob, mode=0o444)
        for sub in sorted({p.parent for p in tmp.rglob("*") if p.is_file()}):
            fsync_dir(sub)
        os.replace(tmp, folder)
        fsync_dir(folder.parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TillError(
            f"cannot write the enrollment files ({exc.strerror or exc}); free "
            "space on the data partition and enroll again"
        ) from None
    return folder


def latest_enrollment(log: EventLog) -> dict[str, Any] | None:
    """The newest ``enrollment.signed`` payload; None when the till was never enrolled."""
    return queries.latest_payload(log, ENROLLMENT_SIGNED)


def latest_signed(till: Till) -> dict[str, Any]:
    found = latest_enrollment(till.log)
    if found is None:
        raise RuleViolation("this till is not enrolled yet; run `tillbox enroll` first")
    return {"manifest": found["manifest"], "signature": found["signature"]}


def export_for_region(till: Till, out: Path) -> dict[str, Any]:
    """The enrollment export (docs/formats.md C3.1): the latest signed manifest with every
    permit scan, photo and file it lists, as one archive the region imports. Each file is
    read back and checked against the signed hash first (a scan changed on the card is
    refused here, not at the region). Written crash-safely (tmp, fsync, rename)."""
    from appliance.formats import enrollment as export_format
    from appliance.formats import zipcanon

    signed = latest_signed(till)
    m = signed["manifest"]
    body = canonical_bytes(m)
    folder = enrollment_folder(till.data_dir, m["sequence"])
    media: dict[str, bytes] = {}
    for item in export_format.media_items(m):
        blob = read_bounded(folder / item.path, SCAN_LIMIT, f"enrollment file {item.path}")
        if _sha256(blob) != item.sha256:
            raise TillError(
                f"{folder / item.path} changed since it was enrolled; restore the data "
                "folder from a backup or re-enroll (`tillbox enroll`)"
            )
        media[item.path] = blob
    entries = export_format.export_entries(
        m["device_id"],
        body,
        signed["signature"],
        {path: (lambda b=blob: [b]) for path, blob in media.items()},
    )
    out = Path(out)
    if not out.parent.is_dir():
        raise TillError(f"folder {out.parent} does not exist; give an existing folder in --out")
    try:
        atomic_write_stream(out, lambda f: zipcanon.write(f, entries))
    except OSError as exc:
        raise TillError(
            f"cannot write {out} ({exc.strerror or exc}); check the folder is writable "
            "and has space, then export again"
        ) from None
    return {
        "path": str(out),
        "device_id": m["device_id"],
        "public_key": m["public_key"],
        "sequence": m["sequence"],
        "manifest_sha256": _sha256(body),
        "files": len(media),
        "bytes": out.stat().st_size,
    }


def verify_signed_manifest(signed: dict[str, Any]) -> dict[str, Any]:
    """Check a region export (``{"manifest", "signature"}``); return what the edge registers.

    The manifest is signed by the key it names, which proves the device holds that key
    (proof of possession); the region's operator still decides whether to approve it.
    Raises TillError with the reason.
    """
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        manifest = signed["manifest"]
        if manifest.get("format") != FORMAT:
            raise TillError(f"not a {FORMAT} manifest; export it with `tillbox enrollment export`")
        key = VerifyKey(bytes.fromhex(manifest["public_key"]))
        key.verify(canonical_bytes(manifest), bytes.fromhex(signed["signature"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise TillError("the enrollment file is incomplete or malformed; export it again") from None
    except BadSignatureError:
        raise TillError(
            "the enrollment manifest's signature does not verify: it was edited after signing "
            "or signed by another key; export it again from the till"
        ) from None
    return {
        "device_id": manifest["device_id"],
        "tenant": manifest.get("tenant", ""),
        "public_key": manifest["public_key"],
        "sequence": manifest["sequence"],
        "permits": [{k: p[k] for k in ("kind", "number", "expires")} for p in manifest["permits"]],
    }
