"""What every driver shares: the device URL, the state a person reads, the fault type.

A device is chosen by a URL in ``tillbox.toml`` (``[hardware]``), never by code:
``usb://04b8:0202``, ``serial:///dev/ttyUSB0?baud=115200``, ``tcp://10.0.0.5:9100``,
``file:///dev/usb/lp0``, ``sim://`` (the simulator shipped in this package), or
``none://`` (the till has no such device; the UI hides it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from appliance.devices import DeviceError

log = logging.getLogger("tillbox.drivers")

SCHEMES = (
    "usb",
    "serial",
    "tcp",
    "file",
    "sim",
    "none",
    "loop",
    "spy",
    "socket",
    "rfc2217",
    "picamera2",
    "gpiozero",
)


class DeviceFault(DeviceError):
    """A device is missing, refused us, or answered nonsense; the message says what to do."""


@dataclass(frozen=True)
class DeviceURL:
    """A parsed device URL; ``query`` holds the ``?key=value`` options as strings."""

    text: str
    scheme: str
    host: str = ""
    port: int | None = None
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> DeviceURL:
        raw = (text or "").strip()
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if not scheme or "://" not in raw:
            raise DeviceFault(
                f"device URL {raw!r} has no scheme; use e.g. sim://, "
                "tcp://HOST:9100, serial:///dev/ttyUSB0, usb://VID:PID"
            )
        try:
            port = parts.port
        except ValueError:
            raise DeviceFault(
                f"device URL {raw!r} has a bad port number; fix it in tillbox.toml [hardware]"
            ) from None
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return cls(raw, scheme, parts.hostname or "", port, parts.path, query)

    def option(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def float_option(self, name: str, default: float) -> float:
        value = self.query.get(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise DeviceFault(
                f"option {name}={value!r} in {self.text} is not a number; "
                "fix it in tillbox.toml [hardware]"
            ) from None

    def int_option(self, name: str, default: int) -> int:
        return int(self.float_option(name, default))


@dataclass(frozen=True)
class DeviceState:
    """A device's health in plain language, for the kiosk's status bar and ``hw list``.

    ``ok`` is False when the device cannot do its job right now; ``message`` then says
    what is wrong and what to do. ``detail`` carries machine-readable extras (paper level,
    GRBL state, laser mode) with stable keys.
    """

    kind: str
    url: str
    ok: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def describe_os_error(exc: BaseException, what: str, where: str) -> str:
    """One line for an OS-level failure opening a device, with the usual fix."""
    text = str(exc)
    errno = getattr(exc, "errno", None)
    if isinstance(exc, PermissionError) or errno == 13 or "Permission denied" in text:
        return (
            f"{what} at {where}: permission denied; add the tillbox user to the "
            "dialout/lp group (or fix the udev rule) and restart"
        )
    if (
        isinstance(exc, FileNotFoundError)
        or errno == 2
        or "No such file" in text
        or "could not open port" in text
    ):
        return f"{what} at {where} is not connected; plug it in or fix the URL in tillbox.toml"
    if isinstance(exc, ConnectionRefusedError) or errno == 111:
        return f"{what} at {where} refused the connection; switch it on or check the address"
    if isinstance(exc, TimeoutError) or "timed out" in text:
        return f"{what} at {where} did not answer in time; check the cable/network and power"
    return f"{what} at {where} failed ({text.splitlines()[0] if text else type(exc).__name__})"
