"""Enrollments at the region: import a till's export, list them, read their media.

A till's enrollment (permits, photos, attestation, asset tags) reaches the region as
its enrollment export file (``tillbox enrollment export``, docs/formats.md C3.1),
imported here from the command line or the console's upload. The export is checked
against the key the region already holds for the device (``tillbox edge enroll``):
signature first, then the manifest, then every file's SHA-256. What passes is stored
as it came (the device-signed manifest byte for byte, each file by hash), so the
region's inspection package can hand an inspector the till's own signed words.

The region's reviewer then approves or rejects it (edge/review.py).
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field, replace
from typing import Any

from nacl.signing import VerifyKey

from appliance.errors import IntegrityError, NotFound
from appliance.formats import enrollment as export_format
from appliance.formats.canonical import canonical_bytes
from appliance.identifiers import check_identifier
from edge.store import Store


@dataclass(frozen=True)
class ReviewRecord:
    """One signed review the region made (edge/review.py)."""

    device_id: str
    tenant: str
    manifest_sha256: str
    decision: str  # approve | reject
    reason: str
    reviewer: str
    decided_ms: int
    message: bytes = field(repr=False)  # the signed TBER bytes (docs/formats.md)
    topic: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "tenant": self.tenant,
            "manifest_sha256": self.manifest_sha256,
            "decision": self.decision,
            "reason": self.reason,
            "reviewer": self.reviewer,
            "decided_ms": self.decided_ms,
            "message_bytes": len(self.message),
            "topic": self.topic,
        }


@dataclass(frozen=True)
class EnrollmentRecord:
    """An imported enrollment, with its latest review (None: not reviewed yet)."""

    device_id: str
    tenant: str
    sequence: int
    manifest_sha256: str
    manifest: dict[str, Any] = field(repr=False)  # the device-signed manifest (C3)
    signature: str = field(repr=False)  # hex, by the device key
    imported_ms: int = 0
    media: list[export_format.MediaItem] = field(default_factory=list)
    review: ReviewRecord | None = None
    already_imported: bool = False  # import_enrollment: the same manifest was there before

    @property
    def status(self) -> str:
        """pending | approved | rejected."""
        if self.review is None:
            return "pending"
        return "approved" if self.review.decision == "approve" else "rejected"

    def signed_file(self) -> bytes:
        """``enrollment.json`` exactly as the till stores it (canonical, plus a newline)."""
        return canonical_bytes({"manifest": self.manifest, "signature": self.signature}) + b"\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "tenant": self.tenant,
            "sequence": self.sequence,
            "manifest_sha256": self.manifest_sha256,
            "status": self.status,
            "imported_ms": self.imported_ms,
            "manifest": self.manifest,
            "media": [
                {
                    "path": m.path,
                    "sha256": m.sha256,
                    "size": m.size,
                    "kind": m.kind,
                    "label": m.label,
                    "content_type": media_type(m.path),
                }
                for m in self.media
            ],
            "review": None if self.review is None else self.review.to_json(),
            "already_imported": self.already_imported,
        }


def media_type(path: str) -> str:
    """The content type a browser should get for an enrollment file (by its name)."""
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def import_enrollment(store: Store, data: bytes, now_ms: int) -> EnrollmentRecord:
    """Verify an enrollment export against the device key the region holds, then store it.

    Importing the same export again changes nothing (``already_imported``). Raises
    TillError with one line: NotFound (exit 1) for a device the region has not
    enrolled; IntegrityError (exit 4) for anything else wrong with the file (not an
    export, too large, a bad signature, another key or tenant, a file that does not
    match its signed hash).
    """
    enrolled: dict[str, tuple[str, str]] = {}

    def key_for(device_id: str) -> VerifyKey | None:
        row = store.device_key(device_id)
        if row is None:
            return None
        enrolled[device_id] = row
        return VerifyKey(bytes.fromhex(row[1]))

    try:
        opened = export_format.open_export(data, key_for)
    except export_format.ExportError as exc:
        if exc.reason == "unknown_device":
            raise NotFound(
                f"{exc}; register its key first (`tillbox edge enroll --device-id ID "
                "--public-key HEX`), then import again"
            ) from None
        raise IntegrityError(
            f"the enrollment export is refused: {exc}; export it again on the till "
            "(`tillbox enrollment export --out FILE`)"
        ) from None
    tenant = enrolled[opened.device_id][0]
    if opened.tenant != tenant:
        raise IntegrityError(
            f"the enrollment names tenant {opened.tenant}, the region enrolled device "
            f"{opened.device_id} for tenant {tenant}; check which till this is"
        )
    manifest_text = opened.manifest_bytes.decode("utf-8")
    with store.transaction():
        new = store.insert_enrollment(
            opened.device_id,
            opened.manifest_sha256,
            tenant,
            opened.sequence,
            manifest_text,
            opened.signature,
            now_ms,
        )
        if new:
            for item in export_format.media_items(opened.manifest):
                store.insert_enrollment_media(
                    opened.device_id, item.sha256, opened.media[item.path]
                )
    record = get_enrollment(store, opened.device_id, opened.manifest_sha256)
    assert record is not None
    if not new:
        record = replace(record, already_imported=True)
    return record


def _review(device_id: str, tenant: str, row: tuple) -> ReviewRecord:
    manifest_sha256, decision, reason, reviewer, decided_ms, message = row
    return ReviewRecord(
        device_id,
        tenant,
        manifest_sha256,
        decision,
        reason,
        reviewer,
        int(decided_ms),
        bytes(message),
    )


def _record(store: Store, row: tuple) -> EnrollmentRecord:
    device_id, digest, tenant, sequence, manifest_text, signature, imported_ms = row
    manifest = json.loads(manifest_text)
    reviews = store.review_rows(device_id, digest)
    return EnrollmentRecord(
        device_id,
        tenant,
        int(sequence),
        digest,
        manifest,
        signature,
        int(imported_ms),
        export_format.media_items(manifest),
        _review(device_id, tenant, reviews[-1]) if reviews else None,
    )


def list_enrollments(store: Store, tenant: str | None = None) -> list[EnrollmentRecord]:
    """Every imported enrollment (of ``tenant``, when given), by device and number."""
    if tenant is not None:
        check_identifier(tenant, "tenant")
    return [_record(store, row) for row in store.enrollment_rows(tenant)]


def get_enrollment(
    store: Store, device_id: str, manifest_sha256: str | None = None
) -> EnrollmentRecord | None:
    """One enrollment of a device: that manifest, or the device's latest; None if none."""
    row = store.enrollment_row(device_id, manifest_sha256)
    return None if row is None else _record(store, row)


def enrollment_media(store: Store, device_id: str, sha256: str) -> bytes | None:
    """The bytes of one enrollment file (a permit scan, a photo) by its SHA-256."""
    return store.enrollment_media(device_id, sha256)


def require_enrollment(store: Store, device_id: str) -> EnrollmentRecord:
    """The device's latest enrollment, or NotFound saying how to get one there."""
    check_identifier(device_id, "device id")
    found = get_enrollment(store, device_id)
    if found is None:
        raise NotFound(
            f"no enrollment of device {device_id} has been imported; export it on the till "
            "(`tillbox enrollment export --out FILE`) and import it "
            "(`tillbox edge enrollment import --db URL FILE`)"
        )
    return found
