"""The device seams: what the core's services need from a printer, engraver, camera, GPIO.

The core knows no driver. Its services (:mod:`appliance.services`) are handed objects
that have these methods (structural typing: a driver need not import this module) and
record what happened in the log. The drivers package implements them
(``drivers.printer.ReceiptPrinter``, ``drivers.grbl.Engraver``, ``drivers.camera.Camera``,
``drivers.gpio.Gpio``): they move bytes and report results, as return values and as
:class:`DeviceError`; they never see the till and never write an event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from appliance.errors import TillError

if TYPE_CHECKING:
    from appliance.datadir import Config, DataDir


class DeviceError(TillError):
    """A device is missing, refused us, or answered nonsense; the message says what to do.

    Drivers raise their own subclass (``drivers.common.DeviceFault``); the services catch
    this one, so the core never imports a driver.
    """


@dataclass(frozen=True)
class PrintDocument:
    """What to print, as the core decides it; the printer's driver lays it out as bytes.

    ``kind`` ``receipt``: ``payload`` is a ``sale.completed`` or ``refund.issued`` payload
    (refund lines carrying their item names). ``kind`` ``z_report``: ``payload`` is the
    ``z_report`` of a ``shift.closed`` event. ``shop`` is the ``[shop]`` config section.
    """

    kind: Literal["receipt", "z_report"]
    payload: dict[str, Any]
    shop: dict[str, Any] = field(default_factory=dict)
    device_id: str = ""
    wall_ms: int | None = None
    reprint: bool = False  # printed as a copy ("*** COPY (reprint) ***")
    qr_payload: str | None = None
    qr_caption: str = ""  # the short code printed under the QR
    currency: str = ""


class PrinterStatus(Protocol):
    """The printer's answer to a status question (``DLE EOT``)."""

    answered: bool
    online: bool | None
    paper: str  # "ok", "near_end", "out" or "unknown"
    cover_open: bool | None

    @property
    def can_print(self) -> bool: ...

    def problem(self) -> str | None: ...

    def to_json(self) -> dict[str, Any]: ...


@runtime_checkable
class Printer(Protocol):
    """A receipt printer: lay out a document, send bytes, answer status, kick the drawer."""

    url: str

    @property
    def columns(self) -> int: ...

    def compose(self, document: PrintDocument) -> bytes:
        """The exact bytes ``document`` is sent as on this printer."""
        ...

    def send(self, data: bytes) -> None: ...

    def status(self) -> PrinterStatus: ...

    def preview(self, document: PrintDocument) -> str:
        """``document`` as this printer would lay it out, as text (nothing is sent)."""
        ...

    def kick_drawer(self) -> bytes:
        """Pulse the cash drawer through the printer; the bytes sent."""
        ...


class EngraveResult(Protocol):
    @property
    def ok(self) -> bool: ...

    outcome: str
    message: str


class EngraveJob(Protocol):
    result: EngraveResult | None

    def hold(self) -> None: ...

    def resume(self) -> None: ...

    def cancel(self) -> None: ...

    def wait(self, timeout: float | None = None) -> EngraveResult | None: ...


@runtime_checkable
class Engraver(Protocol):
    """A laser engraver: stream a job (hold, resume, cancel it) and report its state."""

    url: str

    def start_job(
        self,
        gcode: Sequence[str],
        *,
        estimated_s: float | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
    ) -> EngraveJob: ...

    def state(self) -> Any: ...


@dataclass(frozen=True)
class Photo:
    """A captured picture, as the camera driver reports it (a value, like
    :class:`PrintDocument`: the driver builds one, the core's services record it)."""

    path: Path | None  # None when captured to memory only
    data: bytes = field(repr=False)
    sha256: str
    size: int
    width: int
    height: int
    taken_at: datetime
    latitude: float | None
    longitude: float | None


@runtime_checkable
class Camera(Protocol):
    """A camera: capture a (geotagged) JPEG, to a file when a path is given."""

    url: str

    def capture(self, path: str | Path | None = None, purpose: str = "") -> Photo: ...


# A GPIO report: (event type, payload), e.g. ("power.lost", {"source": "ups", ...}).
GpioReport = tuple[str, dict[str, Any]]


@runtime_checkable
class Gpio(Protocol):
    """The stall's inputs (mains, earth, drawer switch): changes are reported, not recorded.

    ``take_reports`` hands over the changes seen since the last call (gpiozero reports
    them on its own thread; the caller records them on the thread that owns the till).
    """

    url: str

    @property
    def mains_present(self) -> bool: ...

    def take_reports(self) -> list[GpioReport]: ...


class WorkAreaShape(Protocol):
    """Where on the engraver's bed the piece sits (mm, the work coordinates' origin)."""

    width_mm: float
    height_mm: float
    origin_x_mm: float
    origin_y_mm: float
    margin_mm: float


class ToolpathPlan(Protocol):
    """A text turned into strokes and G-code for one material, ready to stream."""

    text: str
    polylines: list[list[tuple[float, float]]]
    bbox: tuple[float, float, float, float]
    letter_mm: float
    gcode: list[str]
    estimated_s: float

    def to_json(self) -> dict[str, Any]: ...


class DeviceHealth(Protocol):
    """A device's health in plain language (``drivers.common.DeviceState``): ``ok`` is
    False when it cannot do its job now, and ``message`` says what to do."""

    kind: str
    url: str
    ok: bool
    message: str
    detail: dict[str, Any]


@runtime_checkable
class DeviceSet(Protocol):
    """The till's configured devices, each built on first use (its ``state()`` says why it
    is missing), plus the engraving geometry the kiosk's proof needs."""

    @property
    def printer(self) -> Printer: ...

    @property
    def engraver(self) -> Engraver: ...

    @property
    def camera(self) -> Camera: ...

    @property
    def gpio(self) -> Gpio: ...

    def toolpath(self, text: str, material: str = "wood") -> ToolpathPlan:
        """The toolpath that engraves ``text`` on ``material`` in the configured work area."""
        ...

    def work_area(self) -> WorkAreaShape: ...

    def state(self, kind: str) -> DeviceHealth:
        """One device's health; never raises (a crashing driver becomes a state too)."""
        ...

    def close(self) -> None: ...


DEVICES_GROUP = "tillbox.devices"


def open_devices(config: Config, data_dir: DataDir | None = None) -> DeviceSet:
    """The configured devices, from the package that implements the seams.

    The front ends (the kiosk, the self-test) never import a driver: the drivers package
    registers its factory under the ``tillbox.devices`` entry point, as backends are
    chosen by configuration and installation, not by the caller's imports.
    """
    from appliance.plugins import installed

    found = installed(DEVICES_GROUP)
    if not found:
        raise DeviceError(
            "no device drivers are installed (entry point tillbox.devices); reinstall "
            "tillbox with `make venv`"
        )
    factory: Callable[[Config, DataDir | None], DeviceSet] = found[0].load()
    return factory(config, data_dir)
