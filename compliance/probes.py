"""The narrow seam between the compliance checks and the hardware.

The self-test and enrollment ask a :class:`Probes` for readings; they never
talk to a device themselves. :class:`DriversProbes` answers through the
drivers package (real hardware or its simulators, chosen by the URLs in
``tillbox.toml``); tests pass fakes that behave (a printer that is out of
paper, an engraver in alarm, a camera that returns a broken frame).

Every method returns a :class:`Reading` and never raises: a missing device is
a reading that says so, because a self-test with every device missing must
still give a verdict for each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from appliance.config import Config
    from appliance.datadir import DataDir
    from appliance.devices import DeviceSet

log = logging.getLogger("tillbox.compliance")

DEVICE_KINDS = ("printer", "engraver", "camera", "gpio")


@dataclass(frozen=True)
class Reading:
    """What a device said. ``configured`` False means its URL is ``none://`` (not fitted)."""

    ok: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    configured: bool = True


class Probes(Protocol):
    def read(self, kind: str) -> Reading:
        """The state of ``kind`` (printer, engraver, camera, gpio); never raises."""

    def capture(self) -> tuple[bytes | None, str]:
        """One camera frame (JPEG/PNG bytes) or None with the reason."""

    def print_label(self, qr_payload: str, lines: list[str]) -> str:
        """Print a QR label; empty string on success, else the reason."""

    def close(self) -> None: ...


def _state_reading(state: Any) -> Reading:
    return Reading(
        bool(getattr(state, "ok", False)),
        str(getattr(state, "message", "")),
        dict(getattr(state, "detail", {}) or {}),
    )


class DriversProbes:
    """Readings through :func:`appliance.devices.open_devices`; opened lazily, closed once."""

    def __init__(self, config: Config, data_dir: DataDir, devices: DeviceSet | None = None) -> None:
        """``devices``: an already open device set to share (the kiosk's, from
        :func:`appliance.devices.open_devices`); it stays open after :meth:`close`, which
        only closes devices this object opened."""
        self.config = config
        self.data_dir = data_dir
        self._devices: DeviceSet | None = devices
        self._owned = devices is None
        self._open_error = ""

    def _open(self) -> DeviceSet | None:
        if self._devices is None and not self._open_error:
            try:
                from appliance.devices import open_devices

                self._devices = open_devices(self.config, self.data_dir)
            except ImportError as exc:
                self._open_error = (
                    f"the drivers package cannot be loaded ({exc}); reinstall tillbox"
                )
            except Exception as exc:  # noqa: BLE001 - a verdict, not a crash
                self._open_error = f"opening the devices failed ({exc})"
        return self._devices

    def devices(self) -> DeviceSet | None:
        """The drivers' device set (opened on first use); None when it cannot be opened."""
        return self._open()

    def _device(self, kind: str) -> tuple[Any, Reading | None]:
        url = str(self.config.section("hardware").get(kind, "") or "")
        if url.strip().lower() in ("", "none://", "none"):
            return None, Reading(
                False,
                f"no {kind} is configured ([hardware] {kind} = {url or 'empty'})",
                {"url": url},
                configured=False,
            )
        devices = self._open()
        if devices is None:
            return None, Reading(False, self._open_error, {"url": url})
        try:
            device = getattr(devices, kind, None)
        except Exception as exc:  # noqa: BLE001 - a bad URL is a verdict (DeviceFault)
            return None, Reading(False, str(exc), {"url": url})
        if device is None:
            return None, Reading(
                False,
                f"the drivers opened no {kind} for {url}; check the URL in tillbox.toml [hardware]",
                {"url": url},
            )
        return device, None

    def read(self, kind: str) -> Reading:
        device, missing = self._device(kind)
        if missing is not None:
            return missing
        devices = self._devices
        try:
            # DeviceSet.state(kind) never raises: a crashing driver becomes a state too
            state = devices.state(kind) if hasattr(devices, "state") else device.state()
        except Exception as exc:  # noqa: BLE001 - drivers promise not to raise; belt and braces
            return Reading(False, f"{kind} state failed: {exc}", {})
        return _state_reading(state)

    def capture(self) -> tuple[bytes | None, str]:
        device, missing = self._device("camera")
        if missing is not None:
            return None, missing.message
        for name in ("capture", "capture_jpeg", "capture_frame"):
            method = getattr(device, name, None)
            if method is None:
                continue
            try:
                frame = method()
            except Exception as exc:  # noqa: BLE001
                return None, f"the camera did not capture a frame ({exc})"
            if isinstance(frame, bytes | bytearray) and frame:
                return bytes(frame), ""
            data = getattr(frame, "data", None) or getattr(frame, "jpeg", None)
            if isinstance(data, bytes | bytearray) and data:
                return bytes(data), ""
            return None, "the camera returned an empty frame; check the lens and cable"
        return None, "the camera driver has no capture method"

    def print_label(self, qr_payload: str, lines: list[str]) -> str:
        device, missing = self._device("printer")
        if missing is not None:
            return missing.message
        if not hasattr(device, "print_label"):  # the layout lives with the printer driver
            return "the configured printer cannot print labels; use a receipt printer"
        try:
            device.print_label(qr_payload, lines)
            return ""
        except Exception as exc:  # noqa: BLE001
            return f"label not printed ({exc})"

    def close(self) -> None:
        if not self._owned:
            self._devices = None
            return
        if self._devices is not None and hasattr(self._devices, "close"):
            try:
                self._devices.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing devices: %s", exc)
        self._devices = None
