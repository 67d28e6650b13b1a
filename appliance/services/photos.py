"""Taking a photo for the record (onboarding, inspection, permit): ``photo.captured``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import events as ev

if TYPE_CHECKING:
    from appliance.devices import Camera, Photo
    from appliance.till import Till


def photo_payload(photo: Photo, root: Path | None = None, purpose: str = "") -> dict[str, Any]:
    """The ``photo.captured`` payload: ints only (the log's canonical form has no floats)."""
    try:
        name = str(photo.path.relative_to(root)) if root and photo.path else str(photo.path or "")
    except ValueError:
        name = str(photo.path)
    payload: dict[str, Any] = {
        "file": name,
        "sha256": photo.sha256,
        "bytes": photo.size,
        "width": photo.width,
        "height": photo.height,
        "purpose": purpose,
        "taken_ms": int(photo.taken_at.timestamp() * 1000),
        "geotagged": photo.latitude is not None,
    }
    if photo.latitude is not None and photo.longitude is not None:
        payload["lat_e7"] = round(photo.latitude * 1e7)
        payload["lon_e7"] = round(photo.longitude * 1e7)
    return payload


def capture_photo(
    till: Till, camera: Camera, out: str | os.PathLike[str] | None = None, purpose: str = ""
) -> tuple[Photo, int]:
    """Capture into ``out`` (default: the till's media folder); record ``photo.captured``."""
    if out is None:
        media = till.data_dir.media_dir
        media.mkdir(exist_ok=True)
        out = media / f"photo-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.jpg"
    photo = camera.capture(Path(out), purpose=purpose)
    event = till.record(ev.PHOTO_CAPTURED, photo_payload(photo, till.data_dir.root, purpose))
    return photo, event.seq
