"""Photos and scans: check they are images, geotag/timestamp captures, read EXIF back.

Pillow does the work; nothing here touches the camera (the caller passes the
frame bytes it got from the drivers package).
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

from PIL import ExifTags, Image, UnidentifiedImageError
from PIL.TiffImagePlugin import IFDRational

from appliance.errors import TillError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
THUMB_PX = 480
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769


def check_image(data: bytes, name: str) -> tuple[int, int]:
    """The image's size; a one-line TillError when the bytes are not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()  # checks structure without decoding everything
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a truncated JPEG passes verify() but fails here
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise TillError(
            f"{name} is not a readable image ({exc}); retake the photo or scan it again"
        ) from None


def _dms(value: float) -> tuple[IFDRational, ...]:
    """Degrees, minutes, seconds as EXIF rationals (seconds to 1/10000)."""
    value = abs(value)
    deg = int(value)
    minutes = int((value - deg) * 60)
    seconds = round((value - deg - minutes / 60) * 3600 * 10000)
    return (IFDRational(deg, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000))


def geotag_jpeg(
    frame: bytes,
    *,
    when: datetime,
    latitude: float | None,
    longitude: float | None,
    description: str = "",
) -> bytes:
    """Re-encode a captured frame as JPEG with DateTimeOriginal and GPS EXIF tags."""
    with Image.open(io.BytesIO(frame)) as img:
        img.load()
        rgb = img.convert("RGB")
    exif = Image.Exif()
    stamp = when.astimezone(UTC).strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0132] = stamp  # DateTime
    exif[0x010E] = description or "tillbox capture"  # ImageDescription
    exif[0x0131] = "tillbox"  # Software
    # Sub-IFDs are written only when set as dicts on the main IFD (Pillow >= 10).
    exif[_EXIF_IFD] = {0x9003: stamp, 0x9011: "+00:00"}  # DateTimeOriginal, OffsetTimeOriginal
    if latitude is not None and longitude is not None:
        exif[_GPS_IFD] = {
            1: "N" if latitude >= 0 else "S",
            2: _dms(latitude),
            3: "E" if longitude >= 0 else "W",
            4: _dms(longitude),
        }
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=88, exif=exif)
    return out.getvalue()


def has_capture_exif(data: bytes) -> bool:
    """True for a JPEG that already carries its capture time (the drivers' camera tags it)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format == "JPEG" and 0x9003 in img.getexif().get_ifd(_EXIF_IFD)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """EXIF values as JSON: rationals become [num, den] pairs, bytes become hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "numerator") and hasattr(value, "denominator"):
        return [int(value.numerator), int(value.denominator)]
    if isinstance(value, int | str):
        return value
    return str(value)


def read_exif(path: Path | BinaryIO) -> dict[str, Any]:
    """The photo's EXIF as named tags (incl. GPS and Exif IFDs), or why there is none
    (``path`` is a file, or the bytes of one: the region reads them from its store)."""
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            out: dict[str, Any] = {
                "width": img.size[0],
                "height": img.size[1],
                "format": img.format or "",
            }
            tags = {
                ExifTags.TAGS.get(k, str(k)): _plain(v)
                for k, v in exif.items()
                if k not in (_GPS_IFD, _EXIF_IFD)
            }
            tags.update(
                {
                    ExifTags.TAGS.get(k, str(k)): _plain(v)
                    for k, v in exif.get_ifd(_EXIF_IFD).items()
                }
            )
            gps = {
                ExifTags.GPSTAGS.get(k, str(k)): _plain(v)
                for k, v in exif.get_ifd(_GPS_IFD).items()
            }
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return {"error": f"not a readable image: {exc}"}
    out["tags"] = {k: v for k, v in sorted(tags.items()) if isinstance(k, str) and k.isascii()}
    out["gps"] = {k: v for k, v in sorted(gps.items()) if isinstance(k, str) and k.isascii()}
    if gps.get("GPSLatitude") and gps.get("GPSLongitude"):
        out["latitude"] = _degrees(gps["GPSLatitude"], gps.get("GPSLatitudeRef", "N"))
        out["longitude"] = _degrees(gps["GPSLongitude"], gps.get("GPSLongitudeRef", "E"))
    return out


def _degrees(dms: list[list[int]], ref: str) -> str:
    """Decimal degrees as a string (floats are not allowed in canonical JSON)."""
    total = sum(Fraction(n, d or 1) / 60**i for i, (n, d) in enumerate(dms))
    sign = -1 if ref in ("S", "W") else 1
    return f"{sign * float(total):.6f}"


def thumbnail_data_uri(path: Path) -> str | None:
    """A small inline JPEG for index.html (no external assets), or None if unreadable."""
    try:
        with Image.open(path) as img:
            img.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            img.convert("RGB").save(out, "JPEG", quality=70)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def now_utc() -> datetime:
    return datetime.now(UTC)
