"""The enrollment export: a till's signed enrollment with its media, for the region.

``tillbox enrollment export --out FILE`` writes it; the region imports it
(``tillbox edge enrollment import``, or the console's upload). One canonical ZIP
(:mod:`appliance.formats.zipcanon`), every entry STORED, sorted by name::

    attestation.txt       the attestation as the manifest lists it (``files[]``)
    device_id             the device id + "\\n": an unsigned hint, only to pick the key
    manifest.json         canonical bytes of the enrollment manifest (docs/formats.md C3)
    manifest.sig          hex Ed25519 signature of manifest.json by the device key + "\\n"
    permits/<16 hex>-<n>  every permit scan the manifest lists, byte for byte
    photos/<16 hex>-<n>   every photo the manifest lists, byte for byte

A reader takes the key the *region* holds for the hinted device, checks the
signature over manifest.json before parsing a byte of it, then that the manifest
names that device and key, then that the archive holds exactly the listed files,
each with the SHA-256 (and size) the signed manifest states. Sizes are capped
before anything is read (docs/formats.md, "Size limits").
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from appliance.boundedio import ENROLLMENT_EXPORT_LIMIT, SCAN_LIMIT, KiB, MiB
from appliance.formats import zipcanon
from appliance.formats.canonical import CanonicalFormError, parse_canonical
from appliance.identifiers import is_identifier

FORMAT = "tillbox-enrollment/1"  # the manifest's "format" (docs/formats.md C3)
DEVICE_ENTRY = "device_id"
MANIFEST_ENTRY = "manifest.json"
SIGNATURE_ENTRY = "manifest.sig"
MANIFEST_LIMIT = 1 * MiB  # names, numbers and hashes: a real manifest is a few KiB
SIGNATURE_LIMIT = 1 * KiB
DEVICE_LIMIT = 128
MAX_ENTRIES = 256  # the three above plus the media
# The paths compliance.enroll gives the media: nothing else is ever read from an export.
_MEDIA_PATH = re.compile(r"(permits|photos)/[0-9a-f]{16}-[A-Za-z0-9._-]{1,60}|attestation\.txt")
_HEX64 = re.compile(r"[0-9a-f]{64}")

Opener = zipcanon.Opener  # an entry's bytes, in chunks (the container's own type)


class ExportError(ValueError):
    """Not a valid export. ``reason`` is a short key; ``str()`` says what to do."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class MediaItem:
    path: str
    sha256: str
    size: int | None  # None: the manifest states no size (files[] entries)
    kind: str  # permit | photo | file
    label: str  # the permit "kind number", the photo label, or the file name


@dataclass
class OpenedExport:
    device_id: str
    tenant: str
    sequence: int
    manifest: dict[str, Any]
    manifest_bytes: bytes  # exactly what the device signed
    signature: str  # hex
    media: dict[str, bytes] = field(repr=False, default_factory=dict)

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()


def media_items(manifest: dict[str, Any]) -> list[MediaItem]:
    """Every file a (signed, parsed) manifest lists, in manifest order. ExportError when a
    listing is malformed or one path is listed with two hashes."""
    items: dict[str, MediaItem] = {}
    try:
        listed = [
            *[
                ("permit", p, f"{p.get('kind', '')} {p.get('number', '')}".strip())
                for p in manifest["permits"]
            ],
            *[("photo", p, str(p.get("label", ""))) for p in manifest["photos"]],
            *[("file", p, str(p["file"])) for p in manifest["files"]],
        ]
        for kind, entry, label in listed:
            path, digest, size = entry["file"], entry["sha256"], entry.get("size")
            if not isinstance(path, str) or not _MEDIA_PATH.fullmatch(path):
                raise ExportError("malformed", f"the manifest lists a file at {path!r}")
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                raise ExportError("malformed", f"{path}: its SHA-256 is not 64 hex digits")
            if size is not None and (type(size) is not int or not 0 <= size <= SCAN_LIMIT):
                raise ExportError("malformed", f"{path}: its size is not a whole number")
            known = items.get(path)
            if known is not None and known.sha256 != digest:
                raise ExportError("malformed", f"{path} is listed twice with two hashes")
            items.setdefault(path, MediaItem(path, digest, size, kind, label))
    except (KeyError, TypeError, AttributeError):
        raise ExportError(
            "malformed", "the manifest's permits, photos or files are malformed"
        ) from None
    return list(items.values())


def export_entries(
    device_id: str, manifest_bytes: bytes, signature_hex: str, media: dict[str, Opener]
) -> list[tuple[str, Opener]]:
    """The archive's entries in canonical (name) order, for zipcanon.write/stream."""
    entries: dict[str, Opener] = dict(media)
    entries[DEVICE_ENTRY] = lambda: [device_id.encode("ascii") + b"\n"]
    entries[MANIFEST_ENTRY] = lambda: [manifest_bytes]
    entries[SIGNATURE_ENTRY] = lambda: [signature_hex.encode("ascii") + b"\n"]
    return [(name, entries[name]) for name in sorted(entries)]


def _member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ExportError("oversize", f"{name} is {info.file_size} bytes, over {limit}")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except zipfile.BadZipFile:  # its CRC-32 fails: the bytes changed after export
        raise ExportError(
            "mismatch", f"{name} does not match its SHA-256 (nor its zip CRC): it was altered"
        ) from None
    if len(data) != info.file_size:
        raise ExportError("malformed", f"{name} is not the size its zip header states")
    return data


def open_export(data: bytes, key_for: Callable[[str], VerifyKey | None]) -> OpenedExport:
    """Verify and unpack an export. ``key_for(device_id)`` is the key the reader holds for
    that device (None: unknown). Raises ExportError; never anything else for bad bytes."""
    try:
        return _open(data, key_for)
    except ExportError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise ExportError("malformed", f"not a readable zip ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - a crafted zip must get a reason, not a crash
        raise ExportError("malformed", f"malformed zip ({type(exc).__name__})") from None


def _open(data: bytes, key_for: Callable[[str], VerifyKey | None]) -> OpenedExport:
    if len(data) > ENROLLMENT_EXPORT_LIMIT:
        raise ExportError(
            "oversize", f"{len(data)} bytes is over the {ENROLLMENT_EXPORT_LIMIT >> 20} MiB limit"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(infos) > MAX_ENTRIES:
            raise ExportError("oversize", f"{len(infos)} entries, more than {MAX_ENTRIES}")
        if len(names) != len(set(names)):
            raise ExportError("malformed", "two entries share a name (a file was added)")
        for info in infos:
            if not zipcanon.is_stored(info):
                raise ExportError(
                    "malformed", f"{info.filename} is compressed; an export stores every entry"
                )
        for name in (DEVICE_ENTRY, MANIFEST_ENTRY, SIGNATURE_ENTRY):
            if name not in names:
                raise ExportError("malformed", f"{name} is missing: not an enrollment export")
        hint = _member(zf, DEVICE_ENTRY, DEVICE_LIMIT).decode("ascii", "replace").strip()
        if not is_identifier(hint):
            raise ExportError("malformed", "the device_id entry is not a device id")
        key = key_for(hint)
        if key is None:
            raise ExportError("unknown_device", f"device {hint} is not enrolled at the region")
        manifest_bytes = _member(zf, MANIFEST_ENTRY, MANIFEST_LIMIT)
        sig_text = _member(zf, SIGNATURE_ENTRY, SIGNATURE_LIMIT).decode("ascii", "replace")
        # The signature first: nothing of the manifest is parsed before it verifies.
        try:
            key.verify(manifest_bytes, bytes.fromhex(sig_text.strip()))
        except (ValueError, BadSignatureError):
            raise ExportError(
                "bad_signature",
                f"the manifest's signature does not verify with the key the region holds for "
                f"{hint}: it was edited, or signed by another device",
            ) from None
        manifest = _manifest(manifest_bytes, hint, key)
        media: dict[str, bytes] = {}
        items = media_items(manifest)
        expected = {i.path for i in items} | {DEVICE_ENTRY, MANIFEST_ENTRY, SIGNATURE_ENTRY}
        extra = sorted(set(names) - expected)
        if extra:
            raise ExportError("mismatch", f"{extra[0]} is in the export but not in the manifest")
        for item in items:
            if item.path not in names:
                raise ExportError("mismatch", f"{item.path} is listed in the manifest but missing")
            blob = _member(zf, item.path, item.size if item.size is not None else SCAN_LIMIT)
            if hashlib.sha256(blob).hexdigest() != item.sha256 or (
                item.size is not None and len(blob) != item.size
            ):
                raise ExportError(
                    "mismatch", f"{item.path} does not match its SHA-256 in the signed manifest"
                )
            media[item.path] = blob
    return OpenedExport(
        manifest["device_id"],
        manifest["tenant"],
        manifest["sequence"],
        manifest,
        manifest_bytes,
        sig_text.strip().lower(),
        media,
    )


def _manifest(raw: bytes, device_id: str, key: VerifyKey) -> dict[str, Any]:
    try:
        manifest = parse_canonical(raw)
    except CanonicalFormError as exc:
        raise ExportError("malformed", f"manifest.json is not canonical JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportError("malformed", f"manifest.json is not a {FORMAT} manifest")
    if manifest.get("device_id") != device_id:
        raise ExportError("mismatch", "the manifest names another device than the export")
    if manifest.get("public_key") != key.encode().hex():
        raise ExportError("mismatch", "the manifest names another public key than the region's")
    tenant, sequence = manifest.get("tenant"), manifest.get("sequence")
    if not is_identifier(tenant) or type(sequence) is not int or sequence < 1:
        raise ExportError("malformed", "the manifest's tenant or sequence is malformed")
    for part in ("operator", "business"):
        value = manifest.get(part)
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ExportError("malformed", f"the manifest's {part} has no name")
    return manifest
