"""The till's devices, from its config: the one entry point the kiosk and compliance use.

::

    devices = open_devices(till.config, till.data_dir)
    devices.printer.state()          # DeviceState(ok, kind, url, message, detail)
    print_sale_receipt(till, sale.event, devices.printer, qr_payload)  # appliance.services
    devices.close()

The devices implement the core's seams (:mod:`appliance.devices`: Printer, Engraver,
Camera, Gpio); the core's services record what they report.

Nothing is opened here: each device is built on first attribute access and opens its
connection on first use, so a till boots with every device missing and each one's
``state()`` says so. ``sim://`` URLs start the simulators in-process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from appliance.config import Section, Setting
from appliance.datadir import Config, DataDir
from drivers.common import DeviceFault, DeviceState
from drivers.gpio import DEFAULT_PINS
from drivers.toolpath import WorkArea

if TYPE_CHECKING:
    from drivers.camera import Camera
    from drivers.gpio import Gpio
    from drivers.grbl import Engraver
    from drivers.printer import ReceiptPrinter
    from drivers.toolpath import Material, Toolpath

KINDS = ("printer", "engraver", "camera", "gpio")

# The sections of tillbox.toml the drivers own (docs/drivers.md), with their defaults;
# checked with the rest of the file when it loads (the ``tillbox.config`` entry point).
_URL = Setting("text", "sim://")
_PIN = {"min": 0, "max": 53}  # BCM GPIO numbers
SECTIONS = {
    "hardware": Section(
        {
            "printer": _URL,
            "engraver": _URL,
            "camera": _URL,
            "gpio": _URL,
            "printer_profile": Setting("text", "default"),
            "paper_width_mm": Setting("int", 80, min=20, max=120),
            "printer_timeout_s": Setting("float", 3.0, min=0.1, max=600),
            "engraver_timeout_s": Setting("float", 5.0, min=0.1, max=600),
        }
    ),
    "gpio": Section({pin: Setting("int", bcm, **_PIN) for pin, bcm in DEFAULT_PINS.items()}),
    "engraver": Section(
        {
            f.name: Setting("float", f.default, min=-10000 if "origin" in f.name else 0, max=10000)
            for f in fields(WorkArea)
        }
    ),
    # [materials.NAME]: overrides of a built-in material, or a new one
    "materials": Section(
        {
            "power": Setting("int", 1000, min=0, max=100000),
            "feed_mm_min": Setting("int", 1000, min=1, max=100000),
            "passes": Setting("int", 1, min=1, max=100),
        },
        named_tables=True,
    ),
}


@dataclass
class Devices:
    config: Config
    data_dir: DataDir | None = None
    _made: dict[str, ReceiptPrinter | Engraver | Camera | Gpio] = field(default_factory=dict)
    _errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def url(self, kind: str) -> str:
        return str(self.config.section("hardware").get(kind, "none://") or "none://")

    def _build(self, kind: str) -> ReceiptPrinter | Engraver | Camera | Gpio:
        hw = self.config.section("hardware")
        url = self.url(kind)
        if kind == "printer":
            from drivers.printer import ReceiptPrinter

            return ReceiptPrinter(
                url, hw["printer_profile"], hw["paper_width_mm"], hw["printer_timeout_s"]
            )
        if kind == "engraver":
            from drivers.grbl import Engraver

            return Engraver(url, timeout=hw["engraver_timeout_s"])
        if kind == "camera":
            from drivers.camera import Camera

            return Camera(url, self.config.device_id, self.config.section("location"))
        if kind == "gpio":
            from drivers.gpio import Gpio

            return Gpio(url, self.config.section("gpio"))
        raise KeyError(kind)

    def get(self, kind: str) -> Any:
        """The device object (built, not opened); raises DeviceFault for a bad URL."""
        with self._lock:
            if kind not in self._made:
                self._made[kind] = self._build(kind)
            return self._made[kind]

    @property
    def printer(self) -> ReceiptPrinter:
        return self.get("printer")

    @property
    def engraver(self) -> Engraver:
        return self.get("engraver")

    @property
    def camera(self) -> Camera:
        return self.get("camera")

    @property
    def gpio(self) -> Gpio:
        return self.get("gpio")

    def configured(self, kind: str) -> bool:
        return not self.url(kind).strip().lower().startswith("none")

    def state(self, kind: str) -> DeviceState:
        """Never raises: a bad URL or a crashing driver is a state with a message."""
        if not self.configured(kind):
            return DeviceState(
                kind,
                self.url(kind),
                False,
                f"no {kind} fitted ([hardware] {kind} = none://)",
                {"configured": False},
            )
        try:
            return self.get(kind).state()
        except DeviceFault as exc:
            return DeviceState(kind, self.url(kind), False, str(exc))
        except Exception as exc:  # noqa: BLE001 - the status bar must always get an answer
            return DeviceState(
                kind, self.url(kind), False, f"{kind} driver failed ({type(exc).__name__}: {exc})"
            )

    def states(self) -> list[DeviceState]:
        return [self.state(kind) for kind in KINDS]

    def work_area(self) -> WorkArea:
        return WorkArea.from_config(self.config.section("engraver"))

    def material(self, name: str) -> Material:
        from drivers.toolpath import material

        return material(name, self.config.section("materials"))

    def toolpath(self, text: str, material: str = "wood") -> Toolpath:
        """``text`` as strokes and G-code for ``material`` in the configured work area."""
        from drivers.toolpath import text_to_toolpath

        return text_to_toolpath(text, self.material(material), self.work_area())

    def close(self) -> None:
        """Close every device and stop the simulators."""
        with self._lock:
            for dev in self._made.values():
                try:
                    dev.shutdown()
                except Exception:  # noqa: BLE001 - closing must not raise
                    pass
            self._made.clear()


def open_devices(config: Config, data_dir: DataDir | None = None) -> Devices:
    """The configured devices, each built and opened lazily."""
    return Devices(config, data_dir)
