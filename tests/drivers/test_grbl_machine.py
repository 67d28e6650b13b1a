"""The engraver against GRBL 1.1's machine model: homing, machine space, travel, alarms.

The first tests talk to the simulator over raw pyserial (no tillbox driver) and pin
what GRBL 1.1's documented interface and source say; the rest drive it with tillbox
and check where the laser really went in machine coordinates.
"""

from __future__ import annotations

import os
import re
import select
import time

import pytest
import serial

from drivers.common import DeviceFault
from drivers.grbl import Engraver
from drivers.grbl_job import EngraveJob
from drivers.grbl_sim import HOMING, GrblSimulator
from drivers.testing import wait_for
from drivers.toolpath import WorkArea, frame_gcode, material, text_to_toolpath


class Wire:
    """A bare GRBL line reader over pyserial, written apart from drivers.grbl."""

    def __init__(self, sim: GrblSimulator) -> None:
        self.port = serial.serial_for_url(sim.port, baudrate=115200, timeout=0.05)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def _next(self) -> str | None:
        while b"\n" not in self.buf:
            chunk = self.port.read(256)
            if not chunk:
                return None
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw.strip().decode()

    def until(self, last) -> list[str]:
        """Lines up to and including the first for which ``last(line)`` is true."""
        out: list[str] = []
        deadline = time.monotonic() + 20  # a safety net for a broken simulator only
        while time.monotonic() < deadline:
            line = self._next()
            if line:
                out.append(line)
                if last(line):
                    return out
        raise AssertionError(f"no closing line after {out}")

    def quiet(self, seconds: float = 0.3) -> list[str]:
        """What arrives within ``seconds`` (to show that nothing does)."""
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            line = self._next()
            if line:
                out.append(line)
        return out

    def ask(self, line: str) -> list[str]:
        """One line; its answer up to ok, error:N or a limit alarm's message."""
        self.send(line.encode() + b"\n")
        return self.until(
            lambda ln: ln == "ok" or ln.startswith("error:") or ln == "[MSG:Reset to continue]"
        )

    def status(self) -> str:
        self.send(b"?")
        return self.until(lambda ln: ln.startswith("<"))[-1]

    def banner(self) -> list[str]:
        return self.until(lambda ln: ln.startswith("Grbl "))

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def wire_sim(request):
    made = []

    def make(**kw):
        sim = GrblSimulator(speed=kw.pop("speed", 400), **kw)
        wire = Wire(sim)
        made.append((sim, wire))
        wire.status()  # in step: whatever came before (a banner or not) is read
        return sim, wire

    yield make
    for sim, wire in made:
        wire.close()
        sim.disconnect()


UNLOCK = "[MSG:'$H'|'$X' to unlock]"


# -- the simulator, as GRBL 1.1 documents it --------------------------------------------------
def test_soft_limits_without_homing_are_error_10_and_homing_off_clears_them(wire_sim):
    sim, wire = wire_sim()
    assert wire.ask("$20=1") == ["error:10"]
    assert wire.ask("$22=1") == ["ok"] and wire.ask("$20=1") == ["ok"]
    assert wire.ask("$22=0") == ["ok"]
    assert "$20=0" in wire.ask("$$")  # GRBL forces soft limits off with homing
    with pytest.raises(ValueError):
        GrblSimulator(settings={20: 1})


def test_power_up_with_homing_is_alarm_without_a_code_and_homing_makes_space_negative(wire_sim):
    sim, wire = wire_sim(settings={**HOMING, 27: 1.0})
    # pyserial may drop the banner sent before it opened; a reset repeats it, Alarm kept
    wire.send(b"\x18")
    lines = wire.until(lambda ln: ln == UNLOCK)
    assert not any(ln.startswith("ALARM:") for ln in lines)  # no code for this Alarm
    assert wire.status().startswith("<Alarm|MPos:0.000,0.000,0.000")
    assert wire.ask("G0 X1") == ["error:9"]  # G-code locked out
    assert wire.ask("$H") == ["ok"]
    # homed towards +X/+Y/+Z ($23=0): the head sits at -pull-off, all space is negative
    assert wire.status().startswith("<Idle|MPos:-1.000,-1.000,-1.000")
    assert wire.ask("G0 X-150 Y-100") == ["ok"]
    wait_for(lambda: sim.state == "Idle", 20, "the move")
    assert sim.pos[:2] == [-150.0, -100.0]


def test_power_up_alarm_message_follows_the_banner():
    sim = GrblSimulator(speed=400, settings=HOMING)
    banner = f"Grbl 1.1h ['$' for help]\r\n{UNLOCK}\r\n".encode()
    try:
        # read what the host side of the wire sees, with a bare os.open: the simulator's
        # thread may already have written the banner into the pty (it did, on a loaded
        # machine), and pyserial's open() flushes the input queue (tcflush), dropping it
        fd = os.open(sim.port, os.O_RDONLY | os.O_NOCTTY)
        try:
            seen, deadline = b"", time.monotonic() + 10
            while not seen.endswith(banner) and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.1)[0]:
                    seen += os.read(fd, 256)
        finally:
            os.close(fd)
        assert seen.endswith(banner), seen
        assert sim.state == "Alarm" and sim.alarm is None
    finally:
        sim.disconnect()


def test_homing_dir_invert_homes_to_the_low_end_but_space_stays_negative(wire_sim):
    sim, wire = wire_sim(settings={**HOMING, 23: 3})
    assert wire.ask("$H") == ["ok"]
    assert sim.pos[:2] == [-299.0, -199.0]  # -$130 + pull-off: still negative space


def test_homing_disabled_is_error_5(wire_sim):
    sim, wire = wire_sim()
    assert wire.ask("$H") == ["error:5"]


def test_soft_limit_alarm_is_told_once_and_grbl_waits_for_a_reset(wire_sim):
    sim, wire = wire_sim(settings=HOMING)
    assert wire.ask("$H") == ["ok"]
    assert wire.ask("G0 X10") == ["ALARM:2", "[MSG:Reset to continue]"]  # space is -300..0
    wire.send(b"?")
    assert wire.quiet() == []  # deaf to everything but a reset
    wire.send(b"\x18")
    lines = wire.until(lambda ln: ln == UNLOCK)
    assert "Grbl 1.1h ['$' for help]" in lines
    status = wire.status()
    assert status.startswith("<Alarm|MPos:-1.000,-1.000,-1.000")  # position kept
    assert not any(ln.startswith("ALARM") for ln in lines)  # the code is not repeated


def test_a_feed_hold_decelerates_and_only_a_complete_hold_resumes(wire_sim):
    """protocol.c: ``~`` in Hold:1 is ignored; a reset before Hold:0 is in motion."""
    sim, wire = wire_sim(speed=1, settings={120: 20, 121: 20})  # 50 mm/s stops in 2.5 s
    assert wire.ask("G1 X200 F3000") == ["ok"]
    wait_for(lambda: sim.state == "Run", 5, "motion")
    wire.send(b"!")
    assert wire.status().startswith("<Hold:1|")
    x = sim.pos[0]
    wire.send(b"~")  # ignored while decelerating
    time.sleep(0.3)
    assert wire.status().startswith("<Hold:1|") and sim.pos[0] > x  # still slowing down
    wire.send(b"\x18")
    assert "ALARM:3" in wire.until(lambda ln: ln == UNLOCK)

    sim, wire = wire_sim(speed=50, settings={120: 20, 121: 20})
    assert wire.ask("G1 X200 F3000") == ["ok"]
    wait_for(lambda: sim.state == "Run", 5, "motion")
    wire.send(b"!")
    wait_for(lambda: sim.state == "Hold:0", 5, "the hold to complete")
    wire.send(b"~")
    assert wire.status().startswith("<Run|")  # a complete hold resumes
    wire.send(b"!")
    wait_for(lambda: sim.state == "Hold:0", 5, "the second hold")
    wire.send(b"\x18")
    assert not any(ln.startswith("ALARM") for ln in wire.banner())
    assert wire.status().startswith("<Idle|")


def test_work_offsets_and_wco_reports(wire_sim):
    sim, wire = wire_sim(settings={10: 1})
    for _ in range(12):  # use up the first WCO report
        wire.status()
    assert wire.ask("G10 L2 P1 X-300 Y-200") == ["ok"]
    assert wire.status().endswith("|WCO:-300.000,-200.000,0.000>")  # right after the change
    assert "WCO" not in wire.status()  # then only now and then
    assert "[G54:-300.000,-200.000,0.000]" in wire.ask("$#")
    assert wire.ask("$10=0") == ["ok"]
    assert wire.status().startswith("<Idle|WPos:300.000,200.000,0.000")
    assert wire.ask("G92 X0 Y0") == ["ok"] and "[G92:300.000,200.000,0.000]" in wire.ask("$#")


# -- tillbox against a homing and a non-homing machine -----------------------------------------
AREA = WorkArea(width_mm=50, height_mm=20, origin_x_mm=20, origin_y_mm=10)


def xy(line: str) -> dict[str, float]:
    return {m[0]: float(m[1:]) for m in re.findall(r"[XY][-\d.]+", line)}


def machine_burns(sim):
    """Every laser-on segment's end, in machine coordinates (as the simulator moved)."""
    return [b.end[:2] for b in sim.burns]


def flat(points):
    return [v for p in points for v in p]


@pytest.mark.parametrize(
    ("settings", "force_origin", "bed_corner"),
    [
        ({}, False, (0.0, 0.0)),  # no homing: machine zero is the bed's corner
        (HOMING, False, (-300.0, -200.0)),  # homing: negative space
        ({**HOMING, 23: 3}, False, (-300.0, -200.0)),  # switches at the low end: same space
        ({**HOMING, 23: 1}, True, (0.0, -200.0)),  # HOMING_FORCE_SET_ORIGIN, X homed low
    ],
    ids=["no-homing", "homing", "homing-dir-invert", "force-origin"],
)
def test_default_job_lands_on_the_work_area_on_every_machine(settings, force_origin, bed_corner):
    sim = GrblSimulator(speed=400, settings=settings, force_origin=force_origin)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        if settings.get(22):
            e.home()
        path = text_to_toolpath("Ana", material("wood"), AREA)
        result = e.start_job(path.gcode, estimated_s=path.estimated_s).wait(30)
        assert result is not None and result.ok, result
        # where the laser burned, in machine coordinates, is the toolpath plus the corner
        expected = [
            (xy(ln)["X"] + bed_corner[0], xy(ln)["Y"] + bed_corner[1])
            for ln in path.gcode
            if ln.startswith("G1")
        ]
        assert flat(machine_burns(sim)) == pytest.approx(flat(expected), abs=1e-6)
        low, high = sim.machine_range(0) if settings.get(20) else (0.0, 300.0)
        assert all(low <= x <= high for x, _ in machine_burns(sim))
        assert sim.coords[54][:2] == list(bed_corner)
        assert sim.errors == [] and sim.alarm is None
        # status is in work coordinates: the job ended at the work area's corner
        status = e.status()
        assert status.wpos[:2] == pytest.approx((20.0, 10.0))
        assert status.mpos[:2] == pytest.approx((20.0 + bed_corner[0], 10.0 + bed_corner[1]))
        assert e.state().detail["wpos"][:2] == pytest.approx([20.0, 10.0])
    finally:
        e.close()
        sim.disconnect()


def test_progress_reports_work_positions_on_a_homing_machine():
    sim = GrblSimulator(speed=100, settings=HOMING)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        e.home()
        path = text_to_toolpath("Ana", material("wood"), AREA)
        seen = []
        assert e.start_job(path.gcode, on_progress=seen.append, poll_s=0.01).wait(30).ok
        positions = [p.position for p in seen if p.position is not None]
        assert positions and all(0 <= x <= 300 and 0 <= y <= 200 for x, y, _ in positions)
    finally:
        e.close()
        sim.disconnect()


def test_a_foreign_g54_and_g92_are_replaced_and_g10_is_only_sent_when_needed():
    sim = GrblSimulator(speed=400)
    sim.coords[54] = [7.0, 3.0, 0.0]  # left by another program
    sim.g92 = [1.0, 1.0, 0.0]
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        path = text_to_toolpath("Ana", material("wood"), AREA)
        assert e.start_job(path.gcode).wait(30).ok
        assert "G10 L2 P1 X0.000 Y0.000" in sim.executed and "G92.1" in sim.executed
        expected = [(xy(ln)["X"], xy(ln)["Y"]) for ln in path.gcode if ln.startswith("G1")]
        assert flat(machine_burns(sim)) == pytest.approx(flat(expected), abs=1e-6)
        before = list(sim.executed)
        assert e.start_job(path.gcode).wait(30).ok
        assert sim.executed[len(before) :] == path.gcode  # no second EEPROM write
    finally:
        e.close()
        sim.disconnect()


def test_dry_run_frame_ends_at_the_work_origin():
    sim = GrblSimulator(speed=400)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        path = text_to_toolpath("Ana", material("wood"), AREA)
        assert e.start_job(frame_gcode(path)).wait(30).ok
        assert sim.wpos[:2] == [20.0, 10.0]
    finally:
        e.close()
        sim.disconnect()


@pytest.mark.parametrize("settings", [{}, HOMING], ids=["no-homing", "homing"])
def test_a_job_beyond_the_travel_is_refused_before_a_byte_is_sent(settings):
    sim = GrblSimulator(speed=400, settings=settings)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        if settings:
            e.home()
        path = text_to_toolpath("Ana", material("wood"), WorkArea(50, 20, origin_x_mm=280))
        assert max(xy(ln).get("X", 0) for ln in path.gcode) > 300  # the job
        sent = len(sim.received)
        with pytest.raises(DeviceFault) as caught:
            e.start_job(path.gcode)
        message = str(caught.value)
        assert "\n" not in message
        assert "leaves the engraver's travel" in message and "X314.667" in message
        assert "X 0-300 mm, Y 0-200 mm ($130=300, $131=200)" in message
        assert "origin_x_mm + width_mm" in message
        job_bytes = bytes(sim.received[sent:])
        assert b"G1" not in job_bytes and b"G0" not in job_bytes and b"M4" not in job_bytes
        assert b"G10" not in job_bytes  # not even the offset
        assert sim.burns == [] and e.job is None
    finally:
        e.close()
        sim.disconnect()


def test_y_beyond_the_travel_and_other_refusals_are_one_line():
    sim = GrblSimulator(speed=400, settings={131: 20})
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        path = text_to_toolpath("Ana", material("wood"), WorkArea(50, 20, origin_y_mm=15))
        cases = {
            "origin_y_mm + height_mm": path.gcode,
            "sets or uses stored offsets": ["G21", "G92 X0 Y0", "G1 X5 F100"],
            "relative (G91) from an unknown position": ["G91", "G1 X5 F100"],
        }
        for expected, job in cases.items():
            sent = len(sim.received)
            with pytest.raises(DeviceFault, match=re.escape(expected)) as caught:
                e.start_job(job)
            assert "\n" not in str(caught.value)
            assert b"G1" not in bytes(sim.received[sent:])
        assert sim.executed == []
    finally:
        e.close()
        sim.disconnect()


def test_a_machine_that_reports_no_travel_is_refused():
    sim = GrblSimulator(speed=400, settings={130: 0})
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        with pytest.raises(DeviceFault, match=r"did not report its travel \(\$130\)"):
            e.start_job(["G0 X1 Y1"])
        assert sim.executed == []
    finally:
        e.close()
        sim.disconnect()


def test_the_default_job_on_a_homing_machine_after_unlock_gets_no_alarm_2():
    """The issue's ALARM:2 at the first move: positive machine coordinates on a machine
    whose space is negative. Unlocked without homing, the position is 0,0 (GRBL's
    power-up), so the bed-corner offset keeps every move in -300..0."""
    sim = GrblSimulator(speed=400, settings=HOMING)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        e.unlock()
        path = text_to_toolpath("Ana", material("wood"), WorkArea(50, 20))
        result = e.start_job(path.gcode).wait(30)
        assert result.ok, result.message
        assert sim.alarm is None and all(x <= 0 for x, _ in machine_burns(sim))
    finally:
        e.close()
        sim.disconnect()


# -- alarms raised before this connection ------------------------------------------------------
def test_power_up_alarm_with_homing_says_what_is_known_and_to_home():
    sim = GrblSimulator(speed=400, settings=HOMING)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        state = e.state()
        assert not state.ok
        assert "in Alarm, raised before this connection" in state.message
        assert "alarm 0" not in state.message
        assert "$H" in state.message and "--home" in state.message
        assert state.detail["alarm"] is None and state.detail["homing"] is True
        with pytest.raises(DeviceFault, match="raised before this connection"):
            e.start_job(["G0 X1 Y1"])
        e.home()
        assert e.state().ok
    finally:
        e.close()
        sim.disconnect()


def test_alarm_seen_by_another_process_without_homing_says_unlock():
    sim = GrblSimulator(speed=400)
    other = Wire(sim)  # another program raises the alarm and reads its one code
    try:
        sim.inject_alarm(3)
        assert other.until(lambda ln: ln.startswith("ALARM:"))[-1] == "ALARM:3"
        other.close()
        e = Engraver(f"serial://{sim.port}", timeout=3.0)
        state = e.state()
        assert "in Alarm, raised before this connection" in state.message
        assert "alarm 0" not in state.message and "--unlock" in state.message
        assert "$H" not in state.message
        e.unlock()
        assert e.state().ok
        e.close()
    finally:
        sim.disconnect()


def test_limit_alarm_seen_by_another_process_the_reset_is_told():
    """After ALARM:2 GRBL answers nothing; tillbox's reset on connect is said aloud."""
    sim = GrblSimulator(speed=400, settings=HOMING)
    other = Wire(sim)
    try:
        other.status()
        assert other.ask("$H") == ["ok"]
        assert other.ask("G0 X5") == ["ALARM:2", "[MSG:Reset to continue]"]
        other.close()
        e = Engraver(f"serial://{sim.port}", timeout=3.0)
        state = e.state()
        assert "in Alarm, raised before this connection" in state.message
        assert "answered nothing until tillbox reset it" in state.message
        assert "--home" in state.message and "\n" not in state.message
        assert not sim.critical
        e.close()
    finally:
        sim.disconnect()


def test_home_on_a_machine_without_homing_is_refused_with_the_fix():
    sim = GrblSimulator(speed=400)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        with pytest.raises(DeviceFault, match=r"homing off \(\$22=0\).*--unlock"):
            e.home()
        assert b"$H" not in bytes(sim.received)
    finally:
        e.close()
        sim.disconnect()


def test_hard_limit_mid_job_is_reset_and_told():
    sim = GrblSimulator(speed=200)
    e = Engraver(f"serial://{sim.port}", timeout=3.0)
    try:
        sim.alarm_after_blocks(5, code=1)
        path = text_to_toolpath("Ana", material("wood"), AREA)
        result = EngraveJob(e.open(), path.gcode).run()
        assert result.outcome == "alarm" and result.error_code == 1
        assert "tillbox reset the controller" in result.message
        assert "position may be lost" in result.message and "--unlock" in result.message
        assert not sim.critical and sim.state == "Alarm"
    finally:
        e.close()
        sim.disconnect()
