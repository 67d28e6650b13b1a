"""One serial connection to a GRBL 1.1 controller: its reader thread, its status and
alarm events, real-time commands and the character-counted send of a G-code line.

Transport: :func:`serial.serial_for_url`, so a real port, ``loop://``, ``spy://`` (hexdump
to the log for field debugging) and the pty simulator all work unchanged.

Buffer: GRBL has a 128-byte receive buffer and drops what does not fit. The connection
keeps the bytes of every unacknowledged line counted and never sends a line that would
take the count over 128; each ``ok``/``error:N`` frees the oldest line. Real-time
commands (``?``, ``!``, ``~``, Ctrl-X) are single bytes GRBL picks out on arrival,
outside the count.

Alarms: GRBL sends an alarm's code once (``ALARM:N``); later status reports say only
``Alarm``, so the connection keeps the code it saw.

Threads: one reader thread turns lines into events; every wait has a timeout, so a
controller that stops answering is a fault, not a hang.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from drivers.common import DeviceFault, describe_os_error
from drivers.grbl_protocol import (
    ERRORS,
    RESET,
    RESET_TO_CONTINUE,
    STATUS_QUERY,
    EngraverAlarm,
    GrblStatus,
    parse_int,
)

if TYPE_CHECKING:
    from serial import Serial

log = logging.getLogger("tillbox.drivers.grbl")
POLL_LOST_S = 1.0  # a poll unanswered this long is taken as lost: ask again


def _open_serial(url: str, baud: int, timeout: float, where: str | None = None) -> Serial:
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0.05, write_timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        cause = exc if isinstance(exc, OSError) else exc
        if isinstance(exc, serial.SerialException) and exc.args and isinstance(exc.args[0], int):
            cause = OSError(exc.args[0], str(exc))
        raise DeviceFault(describe_os_error(cause, "engraver", where or url)) from None


class GrblConnection:
    """A serial link to GRBL with a reader thread; lines become typed events."""

    def __init__(
        self, port_url: str, baud: int = 115200, timeout: float = 5.0, where: str | None = None
    ) -> None:
        self.where = where or port_url
        self.timeout = timeout
        self.serial = _open_serial(port_url, baud, timeout, self.where)
        self.acks: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.status_cond = threading.Condition()
        self.last_status: GrblStatus | None = None
        self.status_count = 0
        self._poll_seen: int | None = None  # status_count when an unanswered poll went out
        self._poll_at = 0.0
        self.banner: str | None = None
        self.banner_event = threading.Event()
        self.alarm: int | None = None  # the code of an ALARM:N seen on this connection
        self.needs_reset = False  # GRBL said "Reset to continue" (a limit alarm)
        self.wco: tuple[float, ...] | None = None  # work coordinate offset, last known
        self.messages: deque[str] = deque(maxlen=50)
        self.settings: dict[int, float] = {}
        self.garbage = 0
        self.bytes_in = 0
        self.closed_reason: str | None = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="grbl-reader", daemon=True)
        self._reader.start()

    # -- reading ---------------------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                # read what is there (at least one byte, or the 50 ms timeout): asking
                # for a fixed size would hold every ok back until the timeout
                chunk = self.serial.read(max(1, self.serial.in_waiting))
            except Exception as exc:  # noqa: BLE001 - SerialException, OSError on unplug
                if self._stop.is_set():
                    return  # closed by us
                log.warning("engraver read failed: %s", exc)  # pyserial's words, for the field
                self._closed(self.unplugged())
                return
            if not chunk:
                continue
            self.bytes_in += len(chunk)
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                self._line(raw.strip(b"\r \x00"))
            if len(buf) > 512:  # a flood without newlines: noise on the line
                self.garbage += len(buf)
                buf = b""

    def unplugged(self) -> str:
        return (
            f"engraver at {self.where} was disconnected; check its USB cable and power, "
            "then check the machine before the next job"
        )

    @property
    def homing(self) -> bool:
        """``$22=1`` as last read with ``$$``."""
        return self.settings.get(22) == 1

    def alarm_error(self, code: int | None = None, note: str = "") -> EngraverAlarm:
        return EngraverAlarm(code, self.homing, note)

    def _closed(self, reason: str) -> None:
        self.closed_reason = reason
        self.acks.put(("closed", reason))
        with self.status_cond:
            self.status_cond.notify_all()
        self.banner_event.set()

    def _line(self, raw: bytes) -> None:
        if not raw:
            return
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            self.garbage += 1
            log.debug("engraver sent unreadable bytes %r", raw[:40])
            return
        if not line.isprintable():
            self.garbage += 1
            return
        log.debug("grbl < %s", line)
        if line == "ok":
            self.acks.put(("ok", None))
        elif line.startswith("error:"):
            self.acks.put(("error", parse_int(line[6:])))
        elif line.startswith("<"):
            status = GrblStatus.parse(line, self.wco)
            if status is None:
                self.garbage += 1
                return
            with self.status_cond:
                self.wco = status.wco
                self.last_status = status
                self.status_count += 1
                self.status_cond.notify_all()
        elif line.startswith("ALARM:"):
            self.alarm = parse_int(line[6:])
            self.acks.put(("alarm", self.alarm))
        elif line.startswith("Grbl "):
            self.needs_reset = False
            self.banner = line
            self.acks.put(("reset", line))
            self.banner_event.set()
        elif line.startswith("$") and "=" in line:
            key, _, value = line[1:].partition("=")
            try:
                self.settings[int(key)] = float(value)
            except ValueError:
                self.garbage += 1
        elif line.startswith("["):
            if line == RESET_TO_CONTINUE:
                self.needs_reset = True
            self.messages.append(line)
        else:
            self.garbage += 1
            log.debug("engraver sent an unknown line %r", line[:60])

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed_reason:
            raise DeviceFault(self.closed_reason)
        log.debug("grbl > %r", data)
        import serial

        try:
            with self._write_lock:
                self.serial.write(data)
        except serial.SerialTimeoutException:
            raise DeviceFault(
                f"engraver at {self.where} did not take data in time; check "
                "that it is switched on, then reset it"
            ) from None
        except Exception as exc:  # noqa: BLE001 - SerialException, OSError on unplug
            log.warning("engraver write failed: %s", exc)
            raise DeviceFault(self.unplugged()) from None

    def realtime(self, byte: bytes) -> None:
        """A real-time command: one byte, outside the character count."""
        self.write(byte)

    def drain_acks(self) -> None:
        while True:
            try:
                self.acks.get_nowait()
            except queue.Empty:
                return

    def command(self, line: str, timeout: float | None = None) -> list[str]:
        """Send one line when nothing else streams; return the messages before its ``ok``."""
        self.drain_acks()
        before = len(self.messages)
        self.write(line.encode("ascii") + b"\n")
        kind, value = self.wait_ack(timeout)
        if kind == "error":
            raise DeviceFault(
                f"engraver refused {line!r}: error {value} "
                f"({ERRORS.get(value, 'see the GRBL manual')})"
            )
        if kind == "alarm":
            raise self.alarm_error(value)
        return list(self.messages)[before:]

    def wait_ack(self, timeout: float | None = None) -> tuple[str, Any]:
        try:
            kind, value = self.acks.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise DeviceFault(
                f"engraver at {self.where} stopped answering; check power and cable, then reset it"
            ) from None
        if kind == "closed":
            raise DeviceFault(value)
        return kind, value

    def query_status(self, timeout: float | None = None) -> GrblStatus:
        with self.status_cond:
            seen = self.status_count
            self.realtime(STATUS_QUERY)
            ok = self.status_cond.wait_for(
                lambda: self.status_count > seen or self.closed_reason is not None,
                timeout=timeout or self.timeout,
            )
            if self.closed_reason:
                raise DeviceFault(self.closed_reason)
            if not ok:
                raise DeviceFault(
                    f"engraver at {self.where} does not answer status queries; "
                    "check power, cable and baud rate"
                )
            assert self.last_status is not None
            return self.last_status

    def poll_status(self) -> None:
        """Ask for a status report without waiting, leaving at most one ``?`` unanswered.

        One at a time, so :meth:`settle_polls` can tell when no report written before a
        given moment is still on its way (a USB serial bridge holds bytes back for
        milliseconds; a busy host reads them later still).
        """
        with self.status_cond:
            unanswered = self._poll_seen is not None and self.status_count == self._poll_seen
            if unanswered and time.monotonic() - self._poll_at < POLL_LOST_S:
                return
            self._poll_seen, self._poll_at = self.status_count, time.monotonic()
            self.realtime(STATUS_QUERY)

    def settle_polls(self, timeout: float = POLL_LOST_S) -> None:
        """Wait until the last :meth:`poll_status` has its answer (or ``timeout``)."""
        with self.status_cond:
            seen = self._poll_seen
            if seen is not None:
                self.status_cond.wait_for(
                    lambda: self.status_count > seen or self.closed_reason is not None,
                    timeout=timeout,
                )
            self._poll_seen = None

    def soft_reset(self) -> None:
        """Ctrl-X and wait for the banner; GRBL keeps an Alarm over it."""
        self.banner_event.clear()
        self.realtime(RESET)
        if not self.banner_event.wait(self.timeout):
            raise DeviceFault(
                f"engraver at {self.where} did not restart after a reset; switch it off and on"
            )
        self.drain_acks()

    def close(self) -> None:
        self._stop.set()
        try:
            self.serial.close()
        except Exception:  # noqa: BLE001
            pass
        self._reader.join(timeout=1)
