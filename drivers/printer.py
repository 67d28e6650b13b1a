"""The receipt printer: python-escpos below a narrow seam, status we can trust above it.

python-escpos' transports (Network, Serial, Usb, File) do the byte I/O; layout is
built on escpos' ``Dummy`` with the same profile (so the magic code-page encoder
picks the ``ESC t n`` switches) and sent in one write. Status is read with our own
``DLE EOT n`` queries, because escpos' ``paper_status()`` reads an empty reply as
"paper OK": here no answer is *unknown*, never OK.

URLs: ``tcp://HOST[:9100]``, ``serial:///dev/ttyUSB0?baud=19200``, ``usb://04b8:0202``,
``file:///dev/usb/lp0`` (write-only: status is always unknown), ``sim://`` (the
simulator in :mod:`drivers.escpos_sim`, started in-process on a free 127.0.0.1 port;
``sim://?paper=out`` / ``?paper=near_end`` / ``?offline=1`` start it faulty).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from drivers.common import DeviceFault, DeviceState, DeviceURL, describe_os_error, log

if TYPE_CHECKING:
    from escpos.escpos import Escpos
    from escpos.printer import Dummy

    from appliance.devices import PrintDocument

DLE_EOT = b"\x10\x04"
# Paper width -> columns of font A (12-dot cells) when the profile does not know its media.
COLUMNS_BY_WIDTH_MM = {58: 32, 80: 48}


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer said; ``None``/``"unknown"`` where it said nothing."""

    answered: bool
    online: bool | None = None
    paper: str = "unknown"  # ok | near_end | out | unknown
    cover_open: bool | None = None

    @property
    def can_print(self) -> bool:
        """False only when the printer *said* it cannot print; unknown is not a refusal."""
        return self.online is not False and self.paper != "out" and self.cover_open is not True

    def problem(self) -> str | None:
        """The one-line reason printing is impossible, or None."""
        if self.cover_open:
            return "printer cover is open; close it and reprint"
        if self.paper == "out":
            return "printer is out of paper; load a new roll and reprint"
        if self.online is False:
            return "printer is offline; check the cover, paper and power, then reprint"
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_status(
    online_byte: int | None, offline_byte: int | None, paper_byte: int | None
) -> PrinterStatus:
    """Decode the answers to DLE EOT 1, 2 and 4 (Epson bit layout; bits 1 and 4 fixed)."""

    def sane(b: int | None) -> bool:
        return b is not None and (b & 0x93) == 0x12  # fixed bits 1,4 set; bits 0,7 clear

    online = None if not sane(online_byte) else not (online_byte & 0x08)
    cover = None if not sane(offline_byte) else bool(offline_byte & 0x04)
    paper = "unknown"
    if sane(paper_byte):
        if paper_byte & 0x60:
            paper = "out"
        elif paper_byte & 0x0C:
            paper = "near_end"
        else:
            paper = "ok"
    answered = any(sane(b) for b in (online_byte, offline_byte, paper_byte))
    return PrinterStatus(answered, online, paper, cover)


def columns_for(profile_name: str, paper_width_mm: int) -> int:
    """Columns of font A: from the printer profile when it knows its paper, else the width."""
    from escpos.capabilities import get_profile

    profile = get_profile(profile_name)
    mm = profile.profile_data.get("media", {}).get("width", {}).get("mm")
    if isinstance(mm, int | float):
        return int(profile.get_columns("a"))
    try:
        return COLUMNS_BY_WIDTH_MM[int(paper_width_mm)]
    except (KeyError, ValueError):
        raise DeviceFault(
            f"paper_width_mm = {paper_width_mm} is not supported; use 58 or 80 "
            "in tillbox.toml [hardware], or name a printer_profile"
        ) from None


def _timed_file_class() -> type[Escpos]:  # built lazily so escpos loads only when used
    from escpos.escpos import Escpos

    class TimedFile(Escpos):
        """A device file (``/dev/usb/lp0``) written without blocking past ``timeout``.

        escpos' own ``File`` does a blocking ``write()``: on a printer that is out of
        paper the kernel's usblp driver then blocks the caller for ever.
        """

        def __init__(self, devfile: str, timeout: float, **kw: object) -> None:
            Escpos.__init__(self, **kw)
            self.devfile = devfile
            self.timeout = timeout
            self._device = False

        def open(self) -> None:
            self.device = os.open(self.devfile, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND)

        def _raw(self, msg: bytes) -> None:
            fd = self.device
            view = memoryview(msg)
            deadline = time.monotonic() + self.timeout
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("the printer did not take the data in time") from None
                    select.select([], [fd], [], min(left, 0.1))

        def close(self) -> None:
            fd, self._device = self._device, False
            if type(fd) is int:  # not False/None, which are "closed" (and False is an int)
                os.close(fd)

    return TimedFile


def _TimedFile(devfile: str, timeout: float, **kw: object) -> Escpos:
    return _timed_file_class()(devfile, timeout, **kw)


def _libusb_available() -> bool:
    """pyusb finds no backend without the C library (Debian's libusb-1.0-0), and then
    says only "No backend available"; ask it up front so the fix can be named."""
    import usb.backend.libusb0
    import usb.backend.libusb1

    return usb.backend.libusb1.get_backend() is not None or (
        usb.backend.libusb0.get_backend() is not None
    )


def usb_ids(url: str) -> tuple[int, int]:
    """``usb://04b8:0202`` -> (0x04b8, 0x0202); a clear error for anything else."""
    body = url.split("://", 1)[-1].split("?", 1)[0].strip("/")
    vid, _, pid = body.partition(":")
    try:
        if len(vid) != 4 or len(pid) != 4:
            raise ValueError
        return int(vid, 16), int(pid, 16)
    except ValueError:
        raise DeviceFault(
            f"printer URL {url} must be usb://VID:PID in hex, e.g. usb://04b8:0202 (see `lsusb`)"
        ) from None


# -- transports: one factory per URL scheme (as pyserial's URL handlers) ----------------------
def _sim_transport(printer: ReceiptPrinter, u: DeviceURL) -> Escpos:
    """``sim://``: the in-process simulator, over its TCP port (the same path as tcp://)."""
    if printer.simulator is None:
        from drivers.escpos_sim import PrinterSimulator

        printer.simulator = PrinterSimulator(printer.columns, printer.profile_name)
        if u.option("paper"):
            printer.simulator.set_paper(u.option("paper", "ok"))
        if u.option("offline") in ("1", "true", "yes"):
            printer.simulator.set_online(False)
    from escpos.printer import Network

    sim = printer.simulator
    return Network(sim.host, sim.port, timeout=printer.timeout, profile=printer.profile_name)


def _tcp_transport(printer: ReceiptPrinter, u: DeviceURL) -> Escpos:
    from escpos.printer import Network

    if not u.host:
        raise DeviceFault(f"printer URL {u.text} names no host; use tcp://HOST:9100")
    return Network(u.host, u.port or 9100, timeout=printer.timeout, profile=printer.profile_name)


def _serial_transport(printer: ReceiptPrinter, u: DeviceURL) -> Escpos:
    from escpos.printer import Serial

    return Serial(
        devfile=u.path,
        baudrate=u.int_option("baud", 19200),
        timeout=printer.timeout,
        profile=printer.profile_name,
    )


def _usb_transport(printer: ReceiptPrinter, u: DeviceURL) -> Escpos:
    ids = usb_ids(u.text)
    try:
        import usb.core  # noqa: F401 - pyusb, escpos' USB transport needs it
    except ImportError:
        raise DeviceFault(
            "USB printers need the pyusb package (pip install pyusb); "
            "or use the printer's serial/network port"
        ) from None
    if not _libusb_available():
        raise DeviceFault(
            "USB printers need libusb: run `apt-get install libusb-1.0-0`; "
            "or use the printer's serial/network port"
        )
    from escpos.printer import Usb

    return Usb(ids[0], ids[1], timeout=int(printer.timeout * 1000), profile=printer.profile_name)


def _file_transport(printer: ReceiptPrinter, u: DeviceURL) -> Escpos:
    return _TimedFile(u.path, printer.timeout, profile=printer.profile_name)


# URL scheme -> the factory of its escpos connection. A new backend is one row here.
TRANSPORTS: dict[str, Callable[[ReceiptPrinter, DeviceURL], Escpos]] = {
    "sim": _sim_transport,
    "tcp": _tcp_transport,
    "serial": _serial_transport,
    "usb": _usb_transport,
    "file": _file_transport,
}


class ReceiptPrinter:
    """One configured printer. Opening is lazy; every I/O has ``timeout`` seconds."""

    kind = "printer"

    def __init__(
        self, url: str, profile: str = "default", paper_width_mm: int = 80, timeout: float = 3.0
    ) -> None:
        self.url = url
        self.parsed = DeviceURL.parse(url)
        self.profile_name = profile or "default"
        self.paper_width_mm = paper_width_mm
        self.timeout = timeout
        self.simulator = None  # drivers.escpos_sim.PrinterSimulator for sim://
        self._esc = None
        self._lock = threading.RLock()
        self.last_error: str | None = None

    @property
    def columns(self) -> int:
        return columns_for(self.profile_name, self.paper_width_mm)

    @property
    def dots(self) -> int:
        """Printable dots per line (sizes the QR code): the profile's, else by paper width."""
        from escpos.capabilities import get_profile

        from drivers.layout import DOTS_BY_WIDTH_MM

        pixels = get_profile(self.profile_name).profile_data.get("media", {})
        pixels = pixels.get("width", {}).get("pixels")
        if isinstance(pixels, int):
            return pixels
        return DOTS_BY_WIDTH_MM.get(int(self.paper_width_mm), DOTS_BY_WIDTH_MM[58])

    # -- opening ---------------------------------------------------------------------------
    def _transport(self) -> Escpos:
        """The escpos connection for this URL's scheme (:data:`TRANSPORTS`); not opened."""
        u = self.parsed
        make = TRANSPORTS.get(u.scheme)
        if make is None:
            raise DeviceFault(
                f"printer URL {u.text}: scheme {u.scheme}:// is not a printer; use "
                "sim://, tcp://, serial://, usb:// or file://"
            )
        return make(self, u)

    def open(self) -> None:
        """Connect now (normally done on first use); raises :class:`DeviceFault`."""
        with self._lock:
            if self._esc is not None:
                return
            if self.parsed.scheme == "none":
                raise DeviceFault(
                    "no receipt printer is configured; set [hardware] printer in tillbox.toml"
                )
            esc = self._transport()
            try:
                esc.open()
                if getattr(esc, "device", None) is None and self.parsed.scheme != "file":
                    raise OSError("device not found")
            except DeviceFault:
                raise
            except Exception as exc:  # noqa: BLE001 - escpos wraps OS errors in its own types
                # escpos reports a missing USB device and a refused TCP connection with the
                # same exception type; only the USB case means "not plugged in".
                if self.parsed.scheme == "usb" and type(exc).__name__ == "DeviceNotFoundError":
                    raise DeviceFault(
                        f"receipt printer at {self.where} is not connected (no such USB "
                        "device); plug it in and switch it on, or fix [hardware] printer"
                    ) from None
                cause = exc.__cause__ or exc.__context__ or exc
                raise DeviceFault(
                    describe_os_error(
                        cause if isinstance(cause, OSError) else exc, "receipt printer", self.where
                    )
                ) from None
            self._esc = esc

    @property
    def where(self) -> str:
        if self.simulator is not None:
            return f"sim:// ({self.simulator.url})"
        return self.url

    def close(self) -> None:
        with self._lock:
            if self._esc is not None:
                try:
                    self._esc.close()
                except Exception:  # noqa: BLE001 - closing must not raise
                    pass
                self._esc = None

    def shutdown(self) -> None:
        """Close and, for sim://, stop the simulator."""
        self.close()
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None

    # -- bytes -----------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Write ``data`` in one go (reconnecting first if the connection went stale)."""
        with self._lock:
            self._fresh()
            log.debug("printer %s > %d bytes: %s", self.where, len(data), data[:96].hex(" "))
            try:
                self._esc._raw(data)
            except Exception as exc:  # noqa: BLE001 - any transport error
                raise self._fault(exc) from None

    def _read_byte(self) -> int | None:
        esc = self._esc
        try:
            data = esc._read()
        except (TimeoutError, NotImplementedError):
            return None
        except Exception as exc:  # noqa: BLE001 - pyusb timeout, serial errors
            log.debug("printer status read failed: %s", exc)
            return None
        if data == b"" and isinstance(getattr(esc, "device", None), socket.socket):
            raise ConnectionResetError("the printer closed the connection")
        return data[-1] if data else None

    def _stale(self) -> bool:
        """Forget unread status bytes; True when a kept TCP connection was closed by the peer.

        A network printer that restarted (or a simulator that stopped) leaves our socket
        half-open: the next write would vanish into it. Checking first costs no round trip.
        """
        dev = getattr(self._esc, "device", None)
        if isinstance(dev, socket.socket):
            dev.setblocking(False)
            try:
                while True:
                    chunk = dev.recv(64)
                    if not chunk:
                        return True
            except BlockingIOError:
                return False
            except OSError:
                return True
            finally:
                try:
                    dev.settimeout(self.timeout)
                except OSError:
                    pass
        if hasattr(dev, "reset_input_buffer"):
            dev.reset_input_buffer()
        return False

    def _fresh(self) -> None:
        """Open, and reopen once if the kept connection went stale."""
        self.open()
        if self._stale():
            self.close()
            self.open()

    def _fault(self, exc: BaseException) -> DeviceFault:
        self.close()
        err = exc if isinstance(exc, OSError) else OSError(str(exc))
        return DeviceFault(describe_os_error(err, "receipt printer", self.where))

    def status(self) -> PrinterStatus:
        """Ask DLE EOT 1, 2 and 4. No answer -> unknown. Never raises for a silent printer."""
        with self._lock:
            self.open()
            if self.parsed.scheme == "file":
                return PrinterStatus(False)
            answers: list[int | None] = []
            self._fresh()
            for n in (1, 2, 4):
                try:
                    self._esc._raw(DLE_EOT + bytes([n]))
                    answer = self._read_byte()
                except Exception as exc:  # noqa: BLE001
                    raise self._fault(exc) from None
                answers.append(answer)
                if answer is None:
                    break  # a silent printer: don't wait three timeouts for three questions
            answers += [None] * (3 - len(answers))
            return parse_status(*answers[:3])

    # -- things a till does ----------------------------------------------------------------
    def new_document(self) -> Dummy:
        """An in-memory escpos printer with this printer's profile, for building layouts."""
        from escpos.printer import Dummy

        return Dummy(profile=self.profile_name)

    def compose(self, document: PrintDocument) -> bytes:
        """The exact bytes ``document`` is sent as on this printer (``drivers.layout``)."""
        from drivers.layout import compose

        return compose(self, document)

    def preview(self, document: PrintDocument) -> str:
        """``document`` laid out for this printer's width, as text (nothing is sent)."""
        from drivers.layout import preview_text

        return preview_text(document, self.columns)

    def kick_drawer(self, pin: int = 2) -> bytes:
        """Pulse the cash drawer (``ESC p``); returns the exact bytes sent."""
        from drivers.layout import drawer_kick_bytes

        data = drawer_kick_bytes(self, pin)
        self.send(data)
        return data

    def cut(self) -> None:
        from drivers.layout import cut_bytes

        self.send(cut_bytes(self))

    def print_label(self, qr_payload: str, lines: list[str]) -> None:
        """A small label: text lines and a QR (enrollment, equipment tags); raises on failure."""
        status = self.status()
        if not status.can_print:
            raise DeviceFault(status.problem() or "printer cannot print")
        from drivers.layout import document_bytes, label_lines

        self.send(document_bytes(self, label_lines(lines, self.columns), qr_payload))
        after = self.status()
        if after.problem():
            raise DeviceFault(f"label did not print completely: {after.problem()}")

    def state(self) -> DeviceState:
        """Plain-language state for the UI and ``hw list``; never raises, never hangs long."""
        started = time.monotonic()
        try:
            status = self.status()
        except DeviceFault as exc:
            return DeviceState(self.kind, self.url, False, str(exc))
        detail = {
            **status.to_json(),
            "columns": self.columns,
            "ms": int((time.monotonic() - started) * 1000),
        }
        if self.simulator is not None:
            detail["sim"] = self.simulator.url
        problem = status.problem()
        if problem:
            return DeviceState(self.kind, self.url, False, problem, detail)
        if not status.answered:
            return DeviceState(
                self.kind,
                self.url,
                True,
                "printer connected but does not report its status; paper level unknown",
                detail,
            )
        if status.paper == "near_end":
            return DeviceState(
                self.kind, self.url, True, "paper is running low; have a new roll ready", detail
            )
        return DeviceState(self.kind, self.url, True, "ready", detail)

    def probe(self) -> dict[str, Any]:
        """Self-test probe: status including paper (for the compliance self-test)."""
        state = self.state()
        return {"ok": state.ok, "message": state.message, **state.detail}
