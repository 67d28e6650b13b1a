"""Reading receipt QR codes out of a picture (zxing-cpp), for the kiosk's camera and the
region console's photo upload: one home for how a picture becomes a payload.

Only QR codes are searched (zxing once found a Codabar inside a QR's modules), and with
several codes in view a tillbox receipt payload (``TB2*...``, ``TB1*...``) wins. The
callers word the outcome for their own user (a cashier at a camera, a merchant with an
upload), so this module reports what it saw, not what to do.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from appliance.errors import TillError

RECEIPT_PREFIXES = ("TB2*", "TB1*")


class UnreadableImage(TillError):
    """The bytes are not a picture that Pillow can open."""


@dataclass(frozen=True)
class QrRead:
    """The payload found (empty when none), and whether a QR was seen but not decoded."""

    text: str
    undecodable: bool = False


def read_receipt_qr(image_bytes: bytes, prefer: tuple[str, ...] = RECEIPT_PREFIXES) -> QrRead:
    """The QR's text in a JPEG/PNG, preferring a payload that starts with ``prefer`` (a
    receipt's by default; the bookings screen prefers a booking code).

    Raises :class:`UnreadableImage` when the bytes are no picture, TillError when
    zxing-cpp is not installed.
    """
    try:
        import zxingcpp  # type: ignore[import-not-found]
    except ImportError:
        raise TillError(
            "QR codes cannot be read here (the zxing-cpp package is missing; reinstall "
            "tillbox); type the receipt number instead"
        ) from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image_bytes)) as img:
            image = img.convert("L")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UnreadableImage(f"not a readable picture ({type(exc).__name__})") from None
    results = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormat.QRCode, return_errors=True
    )
    texts = [r.text for r in results if r.valid and r.text]
    for text in texts:
        if text.startswith(prefer):
            return QrRead(text)
    if texts:
        return QrRead(texts[0])
    return QrRead("", undecodable=bool(results))
