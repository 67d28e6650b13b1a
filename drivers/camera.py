"""The camera: still JPEGs with EXIF an inspector can trust (time, device id, position).

Backends by URL: ``picamera2://`` (the Pi camera; ``picamera2`` is imported only when
used; on Raspberry Pi OS it comes from ``python3-picamera2``, so the venv must be made
with ``--system-site-packages``), ``sim://`` (deterministic, recognisable test frames;
``sim://?missing=1`` behaves like a camera that is not connected), ``none://``.

The simulated camera can be shown something, as if held in front of the lens: in
process ``camera.show(image)`` (a PIL image, PNG/JPEG bytes or a path; ``None`` takes it
away), and for a kiosk running as another process a *scene file* named in the URL,
``sim://?scene=/path/scene.png``, read at every capture while it exists (replace it
atomically: write a temporary file, then rename). What is shown is scaled to fit and
composed into the middle of the test frame; with nothing shown the frame is the
deterministic test image.

EXIF is written with Pillow: Make/Model, DateTime and DateTimeOriginal (UTC, with
OffsetTimeOriginal +00:00), BodySerialNumber = the till's device id,
ImageDescription = the purpose (onboarding, inspection, permit), and the GPS IFD from
``[location] latitude/longitude`` in tillbox.toml (0, 0 means "not set": no GPS tags).
Files are written crash-safely (tmp, fsync, rename).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from appliance.devices import Photo
from drivers.common import DeviceFault, DeviceState, DeviceURL

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL.Image import Exif, Image

# What can be held in front of the simulated lens: a picture, its bytes, its path, nothing.
Picture = Union["Image", bytes, str, os.PathLike[str], None]


def _dms(value: float) -> tuple[Any, Any, Any]:
    from PIL.TiffImagePlugin import IFDRational

    value = abs(value)
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60 * 10000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000)


def build_exif(
    taken_at: datetime,
    device_id: str,
    model: str,
    purpose: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
) -> Exif:
    """A Pillow ``Exif`` with the tags above."""
    from PIL import ExifTags, Image

    stamp = taken_at.astimezone(UTC).strftime("%Y:%m:%d %H:%M:%S")
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "tillbox"
    exif[ExifTags.Base.Model] = model
    exif[ExifTags.Base.DateTime] = stamp
    exif[ExifTags.Base.Software] = "tillbox drivers.camera"
    if purpose:
        exif[ExifTags.Base.ImageDescription] = purpose
    exif[ExifTags.IFD.Exif] = {
        ExifTags.Base.DateTimeOriginal: stamp,
        ExifTags.Base.OffsetTimeOriginal: "+00:00",
        ExifTags.Base.BodySerialNumber: device_id,
    }
    if latitude is not None and longitude is not None:
        t = taken_at.astimezone(UTC)
        from PIL.TiffImagePlugin import IFDRational

        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSVersionID: b"\x02\x03\x00\x00",
            ExifTags.GPS.GPSLatitudeRef: "N" if latitude >= 0 else "S",
            ExifTags.GPS.GPSLatitude: _dms(latitude),
            ExifTags.GPS.GPSLongitudeRef: "E" if longitude >= 0 else "W",
            ExifTags.GPS.GPSLongitude: _dms(longitude),
            ExifTags.GPS.GPSMapDatum: "WGS-84",
            ExifTags.GPS.GPSDateStamp: t.strftime("%Y:%m:%d"),
            ExifTags.GPS.GPSTimeStamp: (
                IFDRational(t.hour, 1),
                IFDRational(t.minute, 1),
                IFDRational(t.second, 1),
            ),
        }
    return exif


def read_gps(path: str | os.PathLike[str]) -> tuple[float, float] | None:
    """Latitude/longitude in degrees from a JPEG's EXIF, or None."""
    from PIL import ExifTags, Image

    with Image.open(path) as img:
        gps = img.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    if not gps or ExifTags.GPS.GPSLatitude not in gps:
        return None

    def deg(parts: Sequence[float], ref: str, neg: str) -> float:
        d, m, s = (float(x) for x in parts)
        value = d + m / 60 + s / 3600
        return -value if ref == neg else value

    return (
        deg(gps[ExifTags.GPS.GPSLatitude], gps[ExifTags.GPS.GPSLatitudeRef], "S"),
        deg(gps[ExifTags.GPS.GPSLongitude], gps[ExifTags.GPS.GPSLongitudeRef], "W"),
    )


def _load_image(source: Picture, what: str) -> Image:
    """A PIL image from an image, encoded bytes or a path; DeviceFault when unreadable."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return source.convert("RGB")
    try:
        if isinstance(source, bytes | bytearray):
            with Image.open(io.BytesIO(source)) as img:
                return img.convert("RGB")
        with Image.open(Path(source)) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DeviceFault(
            f"{what} is not a readable picture ({type(exc).__name__}); give a PNG or JPEG"
        ) from None


class SimCameraBackend:
    """Deterministic frames: colour bars, a grid and the frame number, plus what it is shown.

    ``show(image)`` holds a picture in front of the lens (in process); ``scene`` is a file
    that does the same across processes while it exists (``sim://?scene=PATH``).
    """

    model = "tillbox sim camera"

    def __init__(
        self, size: tuple[int, int] = (640, 480), scene: str | os.PathLike[str] | None = None
    ) -> None:
        self.size = size
        self.frames = 0
        self.scene = Path(scene) if scene else None
        self.shown: Any = None  # PIL.Image.Image held in front of the lens

    def show(self, image: Picture) -> None:
        """Hold ``image`` in front of the lens until ``show(None)``."""
        self.shown = None if image is None else _load_image(image, "the picture to show")

    def _in_view(self) -> Image | None:
        if self.shown is not None:
            return self.shown
        if self.scene is not None and self.scene.is_file():
            return _load_image(self.scene, f"sim camera scene {self.scene}")
        return None

    def capture(self) -> Image:
        img = self._test_frame()
        subject = self._in_view()
        if subject is not None:
            # scaled to fit (keeping its shape) with a margin, in the middle of the frame
            w, h = self.size
            scale = min(w * 0.9 / subject.width, h * 0.9 / subject.height)
            size = (max(1, round(subject.width * scale)), max(1, round(subject.height * scale)))
            from PIL import Image

            subject = subject.resize(size, Image.Resampling.LANCZOS)
            img.paste(subject, ((w - size[0]) // 2, (h - size[1]) // 2))
        return img

    def _test_frame(self) -> Image:
        from PIL import Image, ImageDraw, ImageFont

        self.frames += 1
        w, h = self.size
        img = Image.new("RGB", self.size, (20, 20, 20))
        draw = ImageDraw.Draw(img)
        bars = [
            (255, 255, 255),
            (255, 255, 0),
            (0, 255, 255),
            (0, 255, 0),
            (255, 0, 255),
            (255, 0, 0),
            (0, 0, 255),
            (0, 0, 0),
        ]
        for i, colour in enumerate(bars):
            draw.rectangle([i * w // 8, 0, (i + 1) * w // 8 - 1, h * 2 // 3], fill=colour)
        for x in range(0, w, 40):
            draw.line([(x, h * 2 // 3), (x, h)], fill=(90, 90, 90))
        for y in range(h * 2 // 3, h, 40):
            draw.line([(0, y), (w, y)], fill=(90, 90, 90))
        font = ImageFont.load_default()
        draw.text(
            (16, h * 2 // 3 + 16),
            f"TILLBOX SIM CAMERA  frame {self.frames}",
            fill=(255, 255, 255),
            font=font,
        )
        return img

    def close(self) -> None:
        pass


class Picamera2Backend:
    """The Pi camera through picamera2 (imported only here)."""

    def __init__(self, size: tuple[int, int] = (2028, 1520), timeout: float = 10.0) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise DeviceFault(
                "the picamera2 library is not installed; on the Pi install "
                "python3-picamera2 and make the venv with "
                "--system-site-packages"
            ) from None
        if not Picamera2.global_camera_info():
            raise DeviceFault(
                "no camera detected; check the ribbon cable and that the "
                "camera is enabled, then restart"
            )
        self.cam = Picamera2()
        self.cam.configure(self.cam.create_still_configuration(main={"size": size}))
        self.cam.start()
        self.model = str(self.cam.camera_properties.get("Model", "Raspberry Pi camera"))
        self.timeout = timeout

    def capture(self) -> Image:
        job = self.cam.capture_image("main", wait=False)
        image = self.cam.wait(job, timeout=self.timeout)
        if image is None:
            raise DeviceFault("the camera did not deliver a picture in time; restart it")
        return image.convert("RGB")

    def close(self) -> None:
        self.cam.close()


class Camera:
    kind = "camera"

    def __init__(
        self,
        url: str,
        device_id: str = "",
        location: dict[str, Any] | None = None,
        quality: int = 90,
    ) -> None:
        self.url = url
        self.parsed = DeviceURL.parse(url)
        self.device_id = device_id
        lat = float((location or {}).get("latitude", 0.0) or 0.0)
        lon = float((location or {}).get("longitude", 0.0) or 0.0)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise DeviceFault(
                f"[location] latitude {lat} / longitude {lon} is not a place on "
                "Earth; fix tillbox.toml"
            )
        self.position = None if (lat, lon) == (0.0, 0.0) else (lat, lon)
        self.quality = quality
        self.backend: SimCameraBackend | Picamera2Backend | None = None
        self._lock = threading.Lock()

    def open(self) -> SimCameraBackend | Picamera2Backend:
        if self.backend is not None:
            return self.backend
        u = self.parsed
        if u.scheme == "sim":
            if u.option("missing") in ("1", "true", "yes"):
                raise DeviceFault("no camera detected (simulated); check the ribbon cable")
            w, h = u.int_option("width", 640), u.int_option("height", 480)
            self.backend = SimCameraBackend((w, h), u.option("scene") or None)
        elif u.scheme == "picamera2":
            self.backend = Picamera2Backend()
        elif u.scheme == "none":
            raise DeviceFault("no camera is configured; set [hardware] camera in tillbox.toml")
        else:
            raise DeviceFault(f"camera URL {u.text}: use sim:// or picamera2://")
        return self.backend

    def capture(
        self,
        path: str | os.PathLike[str] | None = None,
        purpose: str = "",
        taken_at: datetime | None = None,
    ) -> Photo:
        """Take one still as a geotagged JPEG (``.data``); written to ``path`` crash-safely.

        Without ``path`` the picture stays in memory (the self-test's capture probe).
        """
        from appliance.fsutil import atomic_write

        with self._lock:
            backend = self.open()
            image = backend.capture()
        when = taken_at or datetime.now(UTC)
        lat, lon = self.position if self.position else (None, None)
        exif = build_exif(when, self.device_id, backend.model, purpose, lat, lon)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=self.quality, exif=exif)
        data = buf.getvalue()
        target = None
        if path is not None:
            target = Path(path)
            if not target.parent.is_dir():
                raise DeviceFault(
                    f"folder {target.parent} does not exist; create it or choose another --out"
                )
            atomic_write(target, data)
        return Photo(
            target,
            data,
            hashlib.sha256(data).hexdigest(),
            len(data),
            image.width,
            image.height,
            when,
            lat,
            lon,
        )

    def show(self, image: Picture) -> None:
        """``sim://`` only: hold a picture in front of the lens (``None`` takes it away)."""
        with self._lock:
            backend = self.open()
            if not isinstance(backend, SimCameraBackend):
                raise DeviceFault(
                    f"camera {self.url} is a real camera; hold the picture in front of it"
                )
            backend.show(image)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    shutdown = close

    def state(self) -> DeviceState:
        try:
            backend = self.open()
        except DeviceFault as exc:
            return DeviceState(self.kind, self.url, False, str(exc))
        detail = {"model": backend.model, "geotag": self.position is not None}
        message = (
            "ready" if self.position else "ready (no [location] set: photos are not geotagged)"
        )
        return DeviceState(self.kind, self.url, True, message, detail)

    def probe(self) -> dict[str, Any]:
        """Self-test probe: a real capture, in memory."""
        try:
            photo = self.capture(purpose="self-test")
        except DeviceFault as exc:
            return {"ok": False, "message": str(exc)}
        return {
            "ok": True,
            "message": "captured a test picture",
            "width": photo.width,
            "height": photo.height,
            "bytes": photo.size,
            "geotag": photo.latitude is not None,
        }
