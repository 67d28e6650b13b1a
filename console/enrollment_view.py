"""What the console shows of a till's imported enrollment, for the inspector's pages and the
admin's review: the device-signed manifest, each file with its link and content type,
for photos the capture time and place their EXIF holds (the till's camera geotags them
from its ``[location]``), and the region's reviews of it.

The records are :mod:`edge.enrollments`' (the one home of their rules); nothing here
reads the database itself.
"""

from __future__ import annotations

import io
from typing import Any

from appliance.boundedio import SCAN_LIMIT
from edge.enrollments import (
    EnrollmentRecord,
    enrollment_media,
    get_enrollment,
    media_type,
)
from edge.store import Store

# Shown in the page (an <img>, the browser's PDF viewer, text); anything else is a download.
INLINE = frozenset({"image/jpeg", "image/png", "application/pdf", "text/plain"})
IMAGES = frozenset({"image/jpeg", "image/png"})


def media_url(device_id: str, sha256: str) -> str:
    return f"/enrollments/{device_id}/media/{sha256}"


def enrollments_of(store: Store, device_id: str) -> list[EnrollmentRecord]:
    """Every imported enrollment of the device, oldest first."""
    found = []
    for row in store.enrollment_rows(device_id=device_id):
        record = get_enrollment(store, device_id, row[1])
        if record is not None:
            found.append(record)
    return found


def _exif(blob: bytes) -> dict[str, Any]:
    from compliance.photos import read_exif

    info = read_exif(io.BytesIO(blob))
    tags = info.get("tags", {})
    return {
        "latitude": info.get("latitude", ""),
        "longitude": info.get("longitude", ""),
        "taken": tags.get("DateTimeOriginal") or tags.get("DateTime") or "",
        "width": info.get("width"),
        "height": info.get("height"),
    }


def describe(store: Store, record: EnrollmentRecord) -> dict[str, Any]:
    """The record as JSON, each file with ``url`` and ``inline``, photos with ``exif``,
    and every review of this manifest (oldest first)."""
    out = record.to_json()
    for item in out["media"]:
        item["url"] = media_url(record.device_id, item["sha256"])
        item["inline"] = item["content_type"] in INLINE
        item["exif"] = None
        if item["content_type"] in IMAGES:
            blob = enrollment_media(store, record.device_id, item["sha256"])
            if blob is not None:
                item["exif"] = _exif(blob)
    out["reviews"] = [
        {
            "decision": decision,
            "reason": reason,
            "reviewer": reviewer,
            "decided_ms": int(decided_ms),
        }
        for _sha, decision, reason, reviewer, decided_ms, _msg in store.review_rows(
            record.device_id, record.manifest_sha256
        )
    ]
    return out


def media_file(store: Store, device_id: str, sha256: str) -> tuple[bytes, str, str] | None:
    """(bytes, content type, file name) of one file a manifest of the device lists, or
    None (a hash no manifest of this device lists is never served)."""
    for record in enrollments_of(store, device_id):
        for item in record.media:
            if item.sha256 == sha256:
                blob = enrollment_media(store, device_id, sha256)
                if blob is None or len(blob) > SCAN_LIMIT:
                    return None
                return blob, media_type(item.path), item.path.rsplit("/", 1)[-1]
    return None
