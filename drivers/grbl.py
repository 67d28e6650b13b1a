"""The laser engraver: GRBL 1.1 over pyserial, streamed with the character-counting protocol.

Transport: :func:`serial.serial_for_url`, so a real port, ``loop://``, ``spy://`` (hexdump
to the log for field debugging) and the pty simulator all work unchanged. URLs:
``serial:///dev/ttyUSB0?baud=115200``, ``spy:///dev/ttyUSB0``, ``sim://`` (a
:class:`drivers.grbl_sim.GrblSimulator` started in-process; ``sim://?speed=50`` runs
its motion 50x faster than the programmed feed).

Streaming: GRBL has a 128-byte receive buffer and drops what does not fit. We keep
the bytes of every unacknowledged line counted and never send a line that would take
the count over 128; each ``ok``/``error:N`` frees the oldest line. Real-time commands
(``?``, ``!``, ``~``, Ctrl-X) are single bytes GRBL picks out on arrival, outside the count.

Coordinates: jobs are in work coordinates (``G54``) with X0 Y0 at the bed's low
corner, on a homing machine (whose machine space is negative) and on one without
homing alike; :mod:`drivers.grbl_space` says where that corner is and checks every
job against ``$130``/``$131`` before a byte of it is sent.

Alarms: GRBL sends an alarm's code once (``ALARM:N``); later status reports say only
``Alarm``. After a hard or soft limit alarm it answers nothing until a soft reset,
which tillbox then sends and says so.

Threads: one reader thread per connection turns lines into events; a job runs in its
own worker thread and reports through callbacks (the kiosk marshals them to the UI
thread). Every wait has a timeout: a controller that stops answering is a fault, not a
hang.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.common import DeviceFault, DeviceState, DeviceURL, describe_os_error
from drivers.grbl_protocol import (
    CRITICAL_ALARMS,
    CYCLE_START,
    ERRORS,
    FEED_HOLD,
    RESET,
    RESET_TO_CONTINUE,
    RX_BUFFER,
    STATUS_QUERY,
    EngraverAlarm,
    GrblStatus,
    Handshake,
    Offsets,
    parse_int,
)
from drivers.grbl_space import MachineSpace, travel_problem

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


@dataclass(frozen=True)
class JobProgress:
    acked: int
    total: int
    state: str  # streaming | held | finishing | done
    position: tuple[float, ...] | None
    elapsed_s: float
    remaining_s: float | None

    @property
    def fraction(self) -> float:
        return self.acked / self.total if self.total else 1.0


@dataclass(frozen=True)
class JobResult:
    outcome: str  # completed | failed | cancelled | alarm
    message: str
    lines_acked: int
    total: int
    failed_line_no: int | None = None  # 1-based
    failed_line: str | None = None
    error_code: int | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "message": self.message,
            "lines_acked": self.lines_acked,
            "total": self.total,
            "failed_line_no": self.failed_line_no,
            "failed_line": self.failed_line,
            "error_code": self.error_code,
            "elapsed_ms": int(self.elapsed_s * 1000),
        }


class _Cancelled(Exception):
    pass


class EngraveJob:
    """One stream of G-code lines, run in a worker thread.

    ``on_progress(JobProgress)`` and ``on_done(JobResult)`` are called from the worker
    thread. :meth:`hold`, :meth:`resume` and :meth:`cancel` may be called from any thread.
    """

    def __init__(
        self,
        conn: GrblConnection,
        lines: Sequence[str],
        *,
        estimated_s: float | None = None,
        on_progress: Callable[[JobProgress], None] | None = None,
        on_done: Callable[[JobResult], None] | None = None,
        poll_s: float = 0.2,
        stall_s: float = 10.0,
    ) -> None:
        self.conn = conn
        self.lines = [ln.strip() for ln in lines if ln.strip()]
        for n, line in enumerate(self.lines, 1):
            if len(line) + 1 > RX_BUFFER:
                raise DeviceFault(
                    f"G-code line {n} is {len(line)} characters; GRBL takes at most {RX_BUFFER - 1}"
                )
            if not line.isascii():
                raise DeviceFault(f"G-code line {n} has non-ASCII characters")
        self.estimated_s = estimated_s
        self.on_progress = on_progress
        self.on_done = on_done
        self.poll_s = poll_s
        self.stall_s = stall_s
        self.acked = 0
        self.held = False
        self.result: JobResult | None = None
        self.max_in_flight = 0
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    # -- control (any thread) --------------------------------------------------------------
    def start(self) -> EngraveJob:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="engrave-job", daemon=True)
        self._thread.start()
        return self

    def run(self) -> JobResult:
        """Run in the calling thread (the CLI); returns when the job ends."""
        self._started = time.monotonic()
        self._run()
        assert self.result is not None
        return self.result

    def hold(self) -> None:
        self.conn.realtime(FEED_HOLD)
        self.held = True

    def resume(self) -> None:
        self.conn.realtime(CYCLE_START)
        self.held = False

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> JobResult | None:
        self._done.wait(timeout)
        return self.result

    # -- the worker ------------------------------------------------------------------------
    def _progress(self, state: str, pos: tuple[float, ...] | None = None) -> None:
        if not self.on_progress:
            return
        elapsed = time.monotonic() - self._started
        remaining = None
        if state == "done":
            remaining = 0.0
        elif self.estimated_s is not None:
            remaining = max(0.0, self.estimated_s - elapsed)
        elif self.acked:
            remaining = elapsed * (len(self.lines) - self.acked) / self.acked
        try:
            self.on_progress(
                JobProgress(self.acked, len(self.lines), state, pos, elapsed, remaining)
            )
        except Exception:
            log.exception("progress callback failed")

    def _finish(self, outcome: str, message: str, **kw: Any) -> None:
        self.result = JobResult(
            outcome,
            message,
            self.acked,
            len(self.lines),
            elapsed_s=time.monotonic() - self._started,
            **kw,
        )
        self._done.set()
        if self.on_done:
            try:
                self.on_done(self.result)
            except Exception:
                log.exception("done callback failed")

    def _run(self) -> None:
        try:
            self._stream()
            self._wait_idle()
        except _Cancelled:
            self._do_cancel()
        except EngraverAlarm as exc:
            note = self._reset_after_limit_alarm(exc.code)
            self._finish("alarm", str(self.conn.alarm_error(exc.code, note)), error_code=exc.code)
        except _LineError as exc:
            self._stop_after_error()
            self._finish(
                "failed",
                str(exc),
                failed_line_no=exc.line_no,
                failed_line=exc.line,
                error_code=exc.code,
            )
        except DeviceFault as exc:
            self._finish("failed", str(exc))
        else:
            self._finish("completed", f"engraving finished: {len(self.lines)} lines")

    def _stream(self) -> None:
        conn = self.conn
        conn.drain_acks()
        in_flight: deque[int] = deque()  # byte counts of unacknowledged lines
        used = 0
        sent = 0
        total = len(self.lines)
        last_poll = 0.0
        last_ack = time.monotonic()
        while self.acked < total:
            if self._cancel.is_set():
                raise _Cancelled
            while sent < total and used + len(self.lines[sent]) + 1 <= RX_BUFFER:
                data = self.lines[sent].encode("ascii") + b"\n"
                conn.write(data)
                in_flight.append(len(data))
                used += len(data)
                sent += 1
                self.max_in_flight = max(self.max_in_flight, used)
            now = time.monotonic()
            if now - last_poll >= self.poll_s:
                last_poll = now
                conn.poll_status()
                status = conn.last_status
                self._progress(
                    "held" if self.held else "streaming", status.position if status else None
                )
            try:
                kind, value = conn.acks.get(timeout=0.05)
            except queue.Empty:
                if self.held:
                    last_ack = time.monotonic()  # waiting on the operator is not a stall
                elif time.monotonic() - last_ack > self.stall_s and not self._moving():
                    raise DeviceFault(
                        f"engraver stopped answering after line {self.acked}; "
                        "check power and cable, then reset it"
                    ) from None
                continue
            if kind == "closed":
                raise DeviceFault(value)
            if kind == "alarm":
                raise conn.alarm_error(value)
            if kind == "reset":
                raise DeviceFault("engraver reset itself mid-job; check its power supply")
            if kind in ("ok", "error"):
                if not in_flight:
                    continue  # a stray ok (e.g. from before the job)
                used -= in_flight.popleft()
                self.acked += 1
                last_ack = time.monotonic()
                if kind == "error":
                    n = self.acked
                    raise _LineError(n, self.lines[n - 1], value)

    def _moving(self) -> bool:
        """True when status reports still arrive (a long move, not a dead controller)."""
        try:
            status = self.conn.query_status(timeout=1.0)
        except DeviceFault:
            return False
        return status.state in ("Run", "Jog", "Hold")

    def _wait_idle(self) -> None:
        """All lines are in the planner; wait until the motion has finished."""
        while True:
            if self._cancel.is_set():
                raise _Cancelled
            if self.conn.alarm is not None:
                raise self.conn.alarm_error(self.conn.alarm)
            try:
                status = self.conn.query_status()
            except DeviceFault:
                if self.conn.alarm is not None:  # a limit alarm: GRBL stops answering ?
                    raise self.conn.alarm_error(self.conn.alarm) from None
                raise
            if status.state == "Idle":
                self._progress("done", status.position)
                return
            if status.state == "Alarm":
                raise self.conn.alarm_error(self.conn.alarm)
            self._progress("held" if status.state == "Hold" else "finishing", status.position)
            time.sleep(self.poll_s)

    def _reset_after_limit_alarm(self, code: int | None) -> str:
        """After a hard or soft limit alarm GRBL hears nothing but a soft reset: send it.

        Returns what the operator is told about it ("" when no reset was needed).
        """
        conn = self.conn
        if code not in CRITICAL_ALARMS and not conn.needs_reset:
            return ""
        try:
            conn.soft_reset()
        except DeviceFault as exc:
            return f"GRBL waits for a reset and tillbox could not send it ({exc})"
        kept = "the position is kept" if code == 2 else "the position may be lost"
        log.warning("engraver alarm %s: soft reset sent to end the stream", code)
        return f"tillbox reset the controller to end the job, as GRBL requires ({kept})"

    def _stop_after_error(self) -> None:
        """After error:N the lines already queued would still burn: stop them all."""
        try:
            self._halt()
        except DeviceFault as exc:
            log.warning("could not stop the engraver after an error: %s", exc)

    def _halt(self) -> None:
        conn = self.conn
        # A report already on its way was written before this hold: it may say Idle (the
        # planner ran dry for a moment) or Hold:0 (a hold since resumed) while the head
        # moves again, and a reset in motion loses the position (ALARM:3). So let the
        # last poll's answer arrive first: every report after the ! answers a later ?.
        conn.settle_polls()
        conn.realtime(FEED_HOLD)
        deadline = time.monotonic() + conn.timeout
        while time.monotonic() < deadline:
            status = conn.query_status(timeout=1.0)
            if status.state in ("Idle", "Alarm") or (
                status.state == "Hold" and status.substate == 0
            ):
                break
            time.sleep(0.05)
        conn.soft_reset()

    def _do_cancel(self) -> None:
        try:
            self._halt()
        except DeviceFault as exc:
            self._finish("failed", f"cancel did not complete cleanly: {exc}")
            return
        self._finish(
            "cancelled",
            f"engraving cancelled after {self.acked} of "
            f"{len(self.lines)} lines; the piece is unfinished",
        )


class _LineError(DeviceFault):
    def __init__(self, line_no: int, line: str, code: int) -> None:
        self.line_no, self.line, self.code = line_no, line, code
        super().__init__(
            f"engraver rejected line {line_no} ({line!r}): error {code} "
            f"({ERRORS.get(code, 'see the GRBL manual')}); job stopped"
        )


class Engraver:
    """The configured engraver: lazy connect, handshake, jobs, state and probes."""

    kind = "engraver"

    def __init__(self, url: str, baud: int | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self.parsed = DeviceURL.parse(url)
        self.baud = baud or self.parsed.int_option("baud", 115200)
        self.timeout = timeout
        self.simulator = None
        self.conn: GrblConnection | None = None
        self.handshake_info: Handshake | None = None
        self.job: EngraveJob | None = None
        self._lock = threading.RLock()

    def _port_url(self) -> str:
        u = self.parsed
        if u.scheme == "sim":
            if self.simulator is not None and self.simulator.closed:
                raise DeviceFault(
                    "engraver simulator was disconnected; restart tillbox to plug it back in"
                )
            if self.simulator is None:
                from drivers.grbl_sim import GrblSimulator

                homing = u.int_option("homing", 0) == 1
                self.simulator = GrblSimulator(
                    speed=u.float_option("speed", 20.0),
                    settings={22: 1, 20: u.int_option("soft_limits", 1)} if homing else None,
                )
            return self.simulator.port
        if u.scheme == "serial":
            if not u.path:
                raise DeviceFault(
                    f"engraver URL {u.text} names no port; use serial:///dev/ttyUSB0?baud=115200"
                )
            return u.path
        if u.scheme in ("loop", "spy", "socket", "rfc2217"):
            return u.text
        if u.scheme == "none":
            raise DeviceFault("no engraver is configured; set [hardware] engraver in tillbox.toml")
        raise DeviceFault(
            f"engraver URL {u.text}: scheme {u.scheme}:// is not a serial port; "
            "use sim://, serial:// or spy://"
        )

    @property
    def where(self) -> str:
        return f"sim:// ({self.simulator.port})" if self.simulator else self.url

    def open(self) -> GrblConnection:
        with self._lock:
            if self.conn is not None and self.conn.closed_reason is None:
                return self.conn
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            port = self._port_url()
            self.conn = GrblConnection(port, self.baud, self.timeout, where=self.where)
            try:
                self.handshake_info = self._handshake(self.conn)
            except DeviceFault:
                self.conn.close()
                self.conn = None
                raise
            return self.conn

    def _handshake(self, conn: GrblConnection) -> Handshake:
        """Banner or a live status report (soft reset only if neither), ``$I``, ``$$``.

        Opening a port may or may not reset the controller (Arduino DTR), and pyserial
        may have flushed a banner sent before we opened; so a quiet port is first asked
        ``?`` (harmless), and only a controller that answers nothing gets Ctrl-X.
        """
        alive = conn.banner_event.wait(min(0.3, self.timeout))
        reset_note = ""
        if not alive and not conn.closed_reason:
            try:
                conn.query_status(timeout=min(1.5, self.timeout))
                alive = True
            except DeviceFault:
                alive = conn.banner_event.is_set()  # a DTR reset's banner came meanwhile
        if not alive and not conn.closed_reason:
            conn.realtime(RESET)
            alive = conn.banner_event.wait(min(2.5, self.timeout))
            if alive:  # e.g. GRBL waiting after a limit alarm seen by another process
                reset_note = "it answered nothing until tillbox reset it"
                log.warning("engraver at %s was silent; tillbox sent a soft reset", self.where)
        if conn.closed_reason:
            raise DeviceFault(conn.closed_reason)
        if not alive:
            if conn.garbage or conn.bytes_in:
                raise DeviceFault(
                    f"engraver at {self.where} answers with unreadable bytes; "
                    f"check the baud rate (set ?baud={self.baud} to match GRBL, "
                    "normally 115200)"
                )
            raise DeviceFault(
                f"engraver at {self.where} did not answer; check that it is "
                "switched on and that the URL names its port"
            )
        conn.drain_acks()
        try:
            build = conn.command("$I")
            conn.settings.clear()
            conn.command("$$")
        except EngraverAlarm:
            build = []
        try:  # the offsets, so status reports give work positions from the start
            conn.wco = Offsets.parse(conn.command("$#"), conn.command("$G")).wco
        except DeviceFault as exc:  # busy (error:8) or in a limit alarm: WCO comes later
            log.debug("engraver offsets not read: %s", exc)
        version = "?"
        if conn.banner and len(conn.banner.split()) > 1:
            version = conn.banner.split()[1]
        for line in build:
            if line.startswith("[VER:"):
                version = line[5:].split(".20")[0].split(":")[0]
        if not version.startswith("1.1"):
            raise DeviceFault(f"engraver runs GRBL {version}; tillbox needs GRBL 1.1 (flash 1.1h)")
        settings = dict(conn.settings)
        status = None
        try:
            status = conn.query_status(timeout=2.0)
        except DeviceFault:
            pass
        return Handshake(
            conn.banner or "", version, build, settings, settings.get(32) == 1, status, reset_note
        )

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    def shutdown(self) -> None:
        self.close()
        if self.simulator is not None:
            self.simulator.disconnect()
            self.simulator = None

    # -- operations ------------------------------------------------------------------------
    def status(self) -> GrblStatus:
        return self.open().query_status()

    def unlock(self) -> None:
        """``$X``: the operator checked the machine after an alarm."""
        conn = self.open()
        conn.command("$X")
        conn.alarm = None

    def home(self, timeout: float = 120.0) -> None:
        """``$H``: run the homing cycle (the answer comes when the head is home)."""
        conn = self.open()
        if not conn.homing:
            raise DeviceFault(
                "engraver has homing off ($22=0), so it cannot home; check the machine, "
                "then unlock it (tillbox hw engrave --unlock)"
            )
        conn.command("$H", timeout=timeout)
        conn.alarm = None

    def space(self) -> MachineSpace:
        """The machine's travel from ``$$`` (read at the handshake)."""
        self.open()
        info = self.handshake_info
        assert info is not None
        return MachineSpace.from_settings(info.settings, info.build_options)

    def check_job(self, gcode: Sequence[str]) -> None:
        """Refuse (DeviceFault, one line) a job that would leave the machine's travel."""
        space = self.space()
        x, y = space.bed_offset()
        z = self._offsets().systems.get(54, (0.0, 0.0, 0.0))[2]
        problem = travel_problem(gcode, space, (x, y, z))
        if problem:
            raise DeviceFault(problem)

    def _offsets(self) -> Offsets:
        conn = self.open()
        return Offsets.parse(conn.command("$#"), conn.command("$G"))

    def _use_bed_coordinates(self) -> None:
        """Make G54 (with no G92) put work X0 Y0 at the bed's low corner.

        ``G10 L2`` writes GRBL's EEPROM, so it is sent only when the offset differs.
        """
        conn = self.open()
        x, y = self.space().bed_offset()
        offsets = self._offsets()
        g54 = offsets.systems.get(54, (0.0, 0.0, 0.0))
        if abs(g54[0] - x) > 5e-4 or abs(g54[1] - y) > 5e-4:
            conn.command(f"G10 L2 P1 X{x:.3f} Y{y:.3f}")
        if any(abs(v) > 5e-4 for v in offsets.g92):
            conn.command("G92.1")
        if offsets.active != 54:
            conn.command("G54")
        conn.wco = Offsets.parse(conn.command("$#"), conn.command("$G")).wco
        conn.query_status()  # so no report from before the change is taken for current

    def set_laser_mode(self) -> None:
        self.open().command("$32=1")
        assert self.handshake_info is not None
        conn = self.conn
        conn.settings.clear()
        conn.command("$$")
        self.handshake_info = Handshake(
            **{
                **self.handshake_info.__dict__,
                "settings": dict(conn.settings),
                "laser_mode": conn.settings.get(32) == 1,
            }
        )

    def ready_problem(self) -> str | None:
        """Why a job must not start now, or None."""
        conn = self.open()
        info = self.handshake_info
        if info is not None and not info.laser_mode:
            return (
                "engraver is not in laser mode ($32=0); set $32=1 (tillbox hw engrave "
                "--set-laser-mode) so the laser turns off between cuts"
            )
        status = conn.query_status()
        if status.state == "Alarm" or conn.alarm is not None:
            return str(self._alarm(conn))
        if status.state != "Idle":
            return f"engraver is busy ({status.state}); wait for it to finish"
        return None

    def start_job(self, gcode: Sequence[str], **kw: Any) -> EngraveJob:
        """Check the machine, then stream ``gcode`` in a worker thread."""
        problem = self.ready_problem()
        if problem:
            raise DeviceFault(problem)
        self.check_job(gcode)  # before a byte of the job is sent
        self._use_bed_coordinates()
        if self.simulator is not None and kw.get("estimated_s"):
            kw["estimated_s"] = kw["estimated_s"] / self.simulator.speed  # sim runs faster
        self.job = EngraveJob(self.open(), gcode, **kw)
        return self.job.start()

    def state(self) -> DeviceState:
        try:
            self.open()
            info = self.handshake_info
            status = self.conn.query_status(timeout=2.0)
        except DeviceFault as exc:
            return DeviceState(self.kind, self.url, False, str(exc))
        except Exception as exc:  # noqa: BLE001
            return DeviceState(
                self.kind, self.url, False, describe_os_error(exc, "engraver", self.where)
            )
        detail = {
            "state": status.state,
            "wpos": list(status.wpos) if status.wpos is not None else None,
            "mpos": list(status.mpos) if status.mpos is not None else None,
            "version": info.version if info else None,
            "laser_mode": info.laser_mode if info else None,
            "homing": self.conn.homing,
            "soft_limits": self.conn.settings.get(20) == 1,
            "travel_mm": [self.conn.settings.get(130 + i) for i in range(3)],
            "alarm": self.conn.alarm,
        }
        if self.simulator is not None:
            detail["sim"] = self.simulator.port
        if status.state == "Alarm" or self.conn.alarm is not None:
            return DeviceState(self.kind, self.url, False, str(self._alarm(self.conn)), detail)
        if info and not info.laser_mode:
            return DeviceState(
                self.kind,
                self.url,
                False,
                "engraver is not in laser mode ($32=0); set $32=1",
                detail,
            )
        return DeviceState(
            self.kind,
            self.url,
            True,
            "ready" if status.state == "Idle" else f"busy ({status.state})",
            detail,
        )

    def _alarm(self, conn: GrblConnection) -> EngraverAlarm:
        note = self.handshake_info.reset_note if self.handshake_info else ""
        return conn.alarm_error(conn.alarm, note if conn.alarm is None else "")

    def probe(self) -> dict[str, Any]:
        """Self-test probe: handshake, idle, ``$32=1``, no alarm."""
        state = self.state()
        return {"ok": state.ok, "message": state.message, **state.detail}


def describe_error(exc: BaseException, where: str) -> str:
    return describe_os_error(exc, "engraver", where)
