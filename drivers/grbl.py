"""The laser engraver: GRBL 1.1 over pyserial, streamed with the character-counting protocol.

Transport: :func:`serial.serial_for_url`, so a real port, ``loop://``, ``spy://`` (hexdump
to the log for field debugging) and the pty simulator all work unchanged. URLs:
``serial:///dev/ttyUSB0?baud=115200``, ``spy:///dev/ttyUSB0``, ``sim://`` (a
:class:`drivers.grbl_sim.GrblSimulator` started in-process; ``sim://?speed=50`` runs
its motion 50x faster than the programmed feed).

The modules: this one is the configured device (:class:`Engraver`);
:mod:`drivers.grbl_connection` is one serial connection (GRBL's 128-byte receive buffer
is never overrun: every unacknowledged line's bytes are counted); :mod:`drivers.grbl_job`
streams one job in a worker thread.

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
import threading
from collections.abc import Sequence
from typing import Any

from drivers.common import DeviceFault, DeviceState, DeviceURL, describe_os_error
from drivers.grbl_connection import GrblConnection
from drivers.grbl_job import EngraveJob
from drivers.grbl_protocol import (
    RESET,
    EngraverAlarm,
    GrblStatus,
    Handshake,
    Offsets,
)
from drivers.grbl_space import MachineSpace, travel_problem

log = logging.getLogger("tillbox.drivers.grbl")


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
