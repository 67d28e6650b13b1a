"""GPIO: UPS power-good, earth sense, cash-drawer switch, status LED and buzzer (gpiozero).

The pin factory is chosen by the URL, never by code: ``sim://`` uses gpiozero's
``MockFactory`` (behavioural: driving a mock pin fires the same callbacks a real
edge would), ``gpiozero://`` uses gpiozero's own choice on the Pi (lgpio on
Bookworm; ``gpiozero://?factory=lgpio`` names it). Pins come from ``[gpio]`` in
tillbox.toml (BCM numbers)::

    [gpio]
    power_good = 17      # high while mains (UPS HAT) is present
    earth_sense = 27     # high while the earth/grounding sense loop is closed
    drawer_switch = 22   # high while the cash drawer is open
    led = 23
    buzzer = 24

Reports: losing or regaining mains is reported as ``power.lost`` / ``power.restored``;
losing the earth as ``device.fault``. gpiozero calls back from its own thread on real
pins, so reports are queued here; :meth:`Gpio.take_reports` hands them over and the
core records them on the till's thread (``appliance.services.power``; the kiosk calls it
on its clock). ``on_event`` listeners see them at once, in the GPIO thread. This driver
never writes to the log.
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance.events import DEVICE_FAULT, POWER_LOST, POWER_RESTORED
from drivers.common import DeviceFault, DeviceState, DeviceURL

if TYPE_CHECKING:
    from gpiozero import Device, Factory

DEFAULT_PINS = {"power_good": 17, "earth_sense": 27, "drawer_switch": 22, "led": 23, "buzzer": 24}
INPUTS = ("power_good", "earth_sense", "drawer_switch")


class Gpio:
    kind = "gpio"

    def __init__(
        self, url: str, pins: dict[str, Any] | None = None, bounce_s: float | None = None
    ) -> None:
        self.url = url
        self.parsed = DeviceURL.parse(url)
        self.pins = {
            **DEFAULT_PINS,
            **{k: int(v) for k, v in (pins or {}).items() if k in DEFAULT_PINS},
        }
        self.bounce_s = bounce_s
        self.factory = None
        self.devices: dict[str, Any] = {}
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.on_event: list[Callable[[str, dict[str, Any]], None]] = []
        self.on_drawer: list[Callable[[bool], None]] = []
        self._lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------
    def _factory(self) -> Factory | None:
        u = self.parsed
        if u.scheme == "sim":
            from gpiozero.pins.mock import MockFactory

            return MockFactory()
        if u.scheme == "gpiozero":
            name = u.option("factory")
            if not name:
                return None  # gpiozero's own choice: $GPIOZERO_PIN_FACTORY, then its chain
            classes = {
                "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
                "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
                "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
                "native": ("gpiozero.pins.native", "NativeFactory"),
            }
            if name not in classes:
                raise DeviceFault(f"GPIO factory {name!r} is not known; use {', '.join(classes)}")
            module, cls = classes[name]
            try:
                return getattr(importlib.import_module(module), cls)()
            except Exception as exc:  # noqa: BLE001 - ImportError, OSError, PinFactoryFallback
                raise DeviceFault(
                    f"GPIO factory {name} cannot start ({exc}); on a Pi install "
                    'python3-lgpio, elsewhere use gpio = "sim://"'
                ) from None
        if u.scheme == "none":
            raise DeviceFault("no GPIO is configured; set [hardware] gpio in tillbox.toml")
        raise DeviceFault(f"GPIO URL {u.text}: use sim:// or gpiozero://")

    def open(self) -> Gpio:
        with self._lock:
            if self.devices:
                return self
            factory = self._factory()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # gpiozero warns once per fallback
                    devs = self._make_devices(factory)
            except Exception as exc:  # noqa: BLE001 - BadPinFactory, GPIOPinInUse, ...
                if factory is not None:
                    factory.close()
                raise DeviceFault(
                    f"GPIO cannot be used ({exc}); on a Pi install python3-lgpio "
                    "and check the [gpio] pins, elsewhere use gpio = "
                    '"sim://"'
                ) from None
            if self.parsed.scheme == "sim":
                # a healthy stall: mains present, earth connected, drawer closed
                factory.pin(self.pins["power_good"]).drive_high()
                factory.pin(self.pins["earth_sense"]).drive_high()
            devs["power_good"].when_deactivated = lambda: self._emit(
                POWER_LOST, {"source": "ups", "pin": self.pins["power_good"]}
            )
            devs["power_good"].when_activated = lambda: self._emit(
                POWER_RESTORED, {"source": "ups", "pin": self.pins["power_good"]}
            )
            devs["earth_sense"].when_deactivated = lambda: self._emit(
                DEVICE_FAULT,
                {
                    "device": "earth",
                    "message": "earth/grounding connection "
                    "lost; stop trading with mains equipment and check it",
                },
            )
            devs["drawer_switch"].when_activated = lambda: self._drawer(True)
            devs["drawer_switch"].when_deactivated = lambda: self._drawer(False)
            self.factory, self.devices = factory, devs
            return self

    def _make_devices(self, factory: Factory | None) -> dict[str, Device]:
        from gpiozero import LED, Buzzer, DigitalInputDevice

        devs: dict[str, Any] = {
            name: DigitalInputDevice(
                self.pins[name], pull_up=False, bounce_time=self.bounce_s, pin_factory=factory
            )
            for name in INPUTS
        }
        devs["led"] = LED(self.pins["led"], pin_factory=factory)
        devs["buzzer"] = Buzzer(self.pins["buzzer"], pin_factory=factory)
        return devs

    def close(self) -> None:
        with self._lock:
            for dev in self.devices.values():
                dev.close()
            self.devices = {}
            if self.factory is not None:
                self.factory.close()
                self.factory = None

    shutdown = close

    # -- events ----------------------------------------------------------------------------
    def _emit(self, type_: str, payload: dict[str, Any]) -> None:
        payload = {**payload, "mono_ms": int(time.monotonic() * 1000)}
        self.events.put((type_, payload))
        for listener in list(self.on_event):
            listener(type_, payload)

    def _drawer(self, is_open: bool) -> None:
        for listener in list(self.on_drawer):
            listener(is_open)

    def take_reports(self) -> list[tuple[str, dict[str, Any]]]:
        """The changes reported since the last call, oldest first (the core records them)."""
        reports = []
        while True:
            try:
                reports.append(self.events.get_nowait())
            except queue.Empty:
                return reports

    # -- reading and driving ---------------------------------------------------------------
    def read(self, name: str) -> bool:
        self.open()
        return bool(self.devices[name].value)

    @property
    def mains_present(self) -> bool:
        return self.read("power_good")

    @property
    def earth_ok(self) -> bool:
        return self.read("earth_sense")

    @property
    def drawer_open(self) -> bool:
        return self.read("drawer_switch")

    def led(self, mode: str = "on") -> None:
        """``on``, ``off`` or ``blink`` (blinking runs in gpiozero's background thread)."""
        led = self.open().devices["led"]
        if mode == "on":
            led.on()
        elif mode == "off":
            led.off()
        elif mode == "blink":
            led.blink(on_time=0.25, off_time=0.25)
        else:
            raise ValueError("LED mode is on, off or blink")

    def beep(self, seconds: float = 0.15, times: int = 1) -> None:
        buzzer = self.open().devices["buzzer"]
        buzzer.blink(on_time=seconds, off_time=seconds, n=times, background=True)

    def sim_drive(self, name: str, high: bool) -> None:
        """Simulator only: drive an input as the outside world would (fires callbacks)."""
        if self.parsed.scheme != "sim":
            raise DeviceFault("only sim:// GPIO inputs can be driven from software")
        self.open()
        pin = self.factory.pin(self.pins[name])
        pin.drive_high() if high else pin.drive_low()

    def output_state(self, name: str) -> bool:
        return bool(self.open().devices[name].value)

    def inputs(self) -> dict[str, bool]:
        self.open()
        return {name: bool(self.devices[name].value) for name in INPUTS}

    def state(self) -> DeviceState:
        try:
            inputs = self.inputs()
        except DeviceFault as exc:
            return DeviceState(self.kind, self.url, False, str(exc))
        detail: dict[str, Any] = {
            **inputs,
            "earth_ok": inputs["earth_sense"],
            "pins": dict(self.pins),
            "on_battery": not inputs["power_good"],
        }
        if not inputs["earth_sense"]:
            return DeviceState(
                self.kind,
                self.url,
                False,
                "no earth/grounding connection detected; check the grounding before trading",
                detail,
            )
        if not inputs["power_good"]:
            return DeviceState(
                self.kind,
                self.url,
                True,
                "mains power lost: running on battery; finish the sale and save power",
                detail,
            )
        return DeviceState(
            self.kind, self.url, True, "mains power present, earth connected", detail
        )

    def probe(self) -> dict[str, Any]:
        """Self-test probe: the three inputs as read now."""
        state = self.state()
        return {"ok": state.ok, "message": state.message, **state.detail}
