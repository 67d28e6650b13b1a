"""GRBL streaming against the pty simulator: the 128-byte buffer, job control, faults."""

from __future__ import annotations

import queue
import threading
import time

import pytest
import serial

from drivers.common import DeviceFault
from drivers.grbl import Engraver
from drivers.grbl_job import EngraveJob
from drivers.grbl_protocol import GrblStatus
from drivers.grbl_sim import HOMING, RX_BUFFER, GrblSimulator
from drivers.testing import wait_for
from drivers.toolpath import WorkArea, frame_gcode, material, text_to_toolpath


def long_job(n=300):
    """A job whose lines vary in length, so the byte count matters (not the line count)."""
    lines = ["G21", "G90", "M4 S0", "F1200"]
    for i in range(n):
        lines.append(
            f"G1 X{(i * 13) % 50}.{i % 10}25 Y{(i * 7) % 30}.5 S{300 + i % 400}"
            + (" (keep going)" if i % 5 == 0 else "")
        )
    return lines + ["M5 S0", "G0 X0 Y0"]


def laser_off_job_slow():
    """Forty 40 mm moves at 3000 mm/min, laser off: long enough to hold and resume."""
    return ["G21", "G90", "M5 S0"] + [f"G1 X{10 + i % 2 * 40} Y5 F3000 S0" for i in range(40)]


@pytest.fixture
def engraver():
    e = Engraver("sim://?speed=400", timeout=3.0)
    yield e
    e.shutdown()


def test_handshake_reads_banner_build_and_laser_mode(engraver):
    engraver.open()
    info = engraver.handshake_info
    assert info.version == "1.1h"  # from the banner or, if pyserial flushed it, from $I
    assert "[OPT:V,15,128]" in info.build
    assert info.settings[32] == 1 and info.laser_mode
    state = engraver.state()
    assert state.ok and state.message == "ready" and state.detail["state"] == "Idle"


def test_soft_reset_banner_is_recognised(engraver):
    conn = engraver.open()
    conn.banner_event.clear()
    conn.realtime(b"\x18")
    assert conn.banner_event.wait(3)
    assert conn.banner == "Grbl 1.1h ['$' for help]"
    assert engraver.state().ok  # idle reset: no alarm


def test_our_streamer_never_overflows_the_128_byte_buffer(engraver):
    lines = long_job()
    engraver.open()
    sim = engraver.simulator
    sim.speed = 150  # slow enough that the planner fills and the buffer is under pressure
    job = engraver.start_job(lines)
    result = job.wait(60)
    assert result is not None and result.ok, result
    assert sim.dropped == 0
    assert sim.executed == lines  # every line arrived whole, in order
    assert job.max_in_flight <= RX_BUFFER
    assert job.max_in_flight > RX_BUFFER - 40  # and it really kept the buffer full


def test_a_naive_sender_corrupts_the_same_job():
    """The counter-proof: writing all lines at once overflows the simulator's buffer."""
    sim = GrblSimulator(speed=150)
    try:
        lines = long_job()
        port = serial.serial_for_url(sim.port, baudrate=115200, timeout=0.1)
        try:
            port.write("".join(line + "\n" for line in lines).encode())
            port.flush()
            wait_for(
                lambda: sim.state == "Idle" and not sim.planner and sim.dropped,
                30,
                "the naive job to end",
            )
        finally:
            port.close()
        assert sim.dropped > 0
        assert sim.executed != lines
        assert len(sim.executed) < len(lines)
    finally:
        sim.disconnect()


def test_progress_callbacks_and_completion_from_a_worker_thread(engraver):
    seen = []
    done = threading.Event()
    engraver.open()
    job = engraver.start_job(
        long_job(120), on_progress=seen.append, on_done=lambda r: done.set(), poll_s=0.02
    )
    assert done.wait(60)
    assert job.result.ok and job.result.lines_acked == job.result.total == 126
    acked = [p.acked for p in seen]
    assert acked == sorted(acked)  # progress only moves forward
    assert seen[-1].state == "done" and seen[-1].fraction == 1.0
    positions = {p.position for p in seen if p.position is not None}
    assert len(positions) > 2  # status reports follow the simulated motion
    assert engraver.status().state == "Idle"


def test_hold_resume(engraver):
    engraver.open()
    engraver.simulator.speed = 30
    job = engraver.start_job(long_job(60), poll_s=0.02)
    wait_for(lambda: engraver.simulator.state == "Run", 10, "motion")
    job.hold()
    wait_for(lambda: engraver.simulator.state == "Hold:0", 5, "the feed hold")
    pos = list(engraver.simulator.pos)
    time.sleep(0.2)
    assert engraver.simulator.pos == pos  # held means not moving
    engraver.simulator.speed = 1000
    job.resume()
    result = job.wait(60)
    assert result.ok
    assert engraver.simulator.executed == long_job(60)


def test_cancel_stops_cleanly_without_alarm(engraver):
    engraver.open()
    engraver.simulator.speed = 20
    job = engraver.start_job(long_job(200), poll_s=0.02)
    wait_for(lambda: job.acked > 20, 10, "some progress")
    job.cancel()
    result = job.wait(20)
    assert result.outcome == "cancelled"
    assert "unfinished" in result.message
    sim = engraver.simulator
    assert sim.state == "Idle" and sim.alarm is None and not sim.planner
    assert engraver.state().ok  # ready for the next job


class LateLines:
    """The host's side of a slow USB serial bridge: every line arrives ``delay_s`` late.

    Lines keep their order; only their delivery to the driver's reader is held back, so
    a status report can reach the driver after it has sent the next real-time command.
    """

    def __init__(self, conn, delay_s: float) -> None:
        self.deliver, self.delay_s = conn._line, delay_s
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()
        conn._line = lambda raw: self.queue.put((time.monotonic() + self.delay_s, raw))

    def _run(self) -> None:
        while True:
            due, raw = self.queue.get()
            time.sleep(max(0.0, due - time.monotonic()))
            self.deliver(raw)


def test_cancel_after_a_resume_waits_for_a_report_written_after_its_hold(engraver):
    """A report still on its way says Hold:0 from before the resume; the head moves.

    Resetting on it would reset in motion (ALARM:3, the position lost). The driver must
    stop on a report that answers a ``?`` sent after its own ``!``.
    """
    engraver.open()
    sim = engraver.simulator
    sim.speed = 2
    sim.settings[120] = sim.settings[121] = 10  # 3000 mm/min stops in 5 s, here 2.5 s
    LateLines(engraver.conn, 0.4)
    job = engraver.start_job(laser_off_job_slow(), poll_s=0.02)
    wait_for(lambda: sim.state == "Run", 10, "motion")
    job.hold()
    wait_for(lambda: sim.state == "Hold:0", 10, "the feed hold")
    time.sleep(0.8)  # the reports on their way now all say Hold:0
    job.resume()
    wait_for(lambda: sim.state == "Run", 5, "the resume")
    job.cancel()
    result = job.wait(30)
    assert result.outcome == "cancelled", result
    assert sim.alarm is None, f"reset in motion: ALARM:{sim.alarm}"
    assert sim.state == "Idle"


def test_alarm_mid_job_stops_and_requires_unlock(engraver):
    engraver.open()
    engraver.simulator.alarm_after_blocks(30, code=1)
    job = engraver.start_job(long_job(100))
    result = job.wait(20)
    assert result.outcome == "alarm" and result.error_code == 1
    assert "hard limit" in result.message and "unlock" in result.message
    state = engraver.state()
    assert not state.ok and "alarm 1" in state.message
    with pytest.raises(DeviceFault, match="alarm"):
        engraver.start_job(["G0 X1"])
    engraver.unlock()
    assert engraver.state().ok
    assert engraver.start_job(["G0 X1 Y1"]).wait(10).ok


def test_soft_limit_alarm_from_the_job_itself():
    """A job that slips past the travel check (here: streamed without it) hits GRBL's soft
    limit; GRBL then hears nothing but a reset, which tillbox sends and says so."""
    sim = GrblSimulator(speed=400, settings={**HOMING, 130: 100, 131: 50})
    try:
        e = Engraver(f"serial://{sim.port}", timeout=3.0)
        e.home()
        lines = long_job(40)
        lines[30] = "G1 X150 Y10"  # beyond the 100 mm X travel, even in machine space
        result = EngraveJob(e.conn, lines).run()
        assert result.outcome == "alarm" and result.error_code == 2
        assert "soft limit" in result.message
        assert "tillbox reset the controller" in result.message
        assert "position is kept" in result.message and "--home" in result.message
        assert "\n" not in result.message
        assert "G1 X150 Y10" not in sim.executed
        assert not sim.critical  # the reset reached it: it answers again
        state = e.state()
        assert not state.ok and "alarm 2" in state.message
        e.home()
        assert e.state().ok
        e.close()
    finally:
        sim.disconnect()


def test_error_aborts_with_the_offending_line(engraver):
    engraver.open()
    lines = long_job(40)
    lines[25] = "G1 X5 Q7"  # Q is not a GRBL word
    job = engraver.start_job(lines)
    result = job.wait(20)
    assert result.outcome == "failed"
    assert result.failed_line_no == 26 and result.failed_line == "G1 X5 Q7"
    assert result.error_code == 20
    assert "line 26" in result.message
    sim = engraver.simulator
    wait_for(lambda: sim.state == "Idle", 5, "the machine to stop")
    assert "G1 X5 Q7" not in sim.executed
    assert len(sim.executed) < len(lines) - 1  # later lines were not burned


def test_dry_run_frame_never_fires_the_laser(engraver):
    path = text_to_toolpath("Anna", material("wood"), WorkArea(60, 25))
    engraver.open()
    assert engraver.start_job(frame_gcode(path)).wait(20).ok
    sim = engraver.simulator
    assert sim.burns == []
    xs = [float(w[1:]) for ln in sim.executed[:-1] for w in ln.split() if w.startswith("X")]
    assert min(xs) == pytest.approx(path.bbox[0], abs=1e-3)
    assert max(xs) == pytest.approx(path.bbox[2], abs=1e-3)
    # the real job burns
    assert engraver.start_job(path.gcode, estimated_s=path.estimated_s).wait(30).ok
    assert len(sim.burns) > 10


def test_stalled_controller_is_a_fault_not_a_hang(engraver):
    engraver.open()
    engraver.simulator.stall()
    job = EngraveJob(engraver.conn, long_job(50), stall_s=1.0)
    started = time.monotonic()
    result = job.run()
    assert result.outcome == "failed" and "stopped answering" in result.message
    assert time.monotonic() - started < 15
    assert not engraver.state().ok


def test_disconnect_mid_job(engraver):
    engraver.open()
    engraver.simulator.speed = 20
    job = engraver.start_job(long_job(200), poll_s=0.02)
    wait_for(lambda: job.acked > 10, 10, "some progress")
    engraver.simulator.disconnect()
    result = job.wait(15)
    assert result is not None and result.outcome == "failed"
    assert "disconnected; check its USB cable" in result.message
    assert "device reports" not in result.message  # not pyserial's wording
    assert "Errno" not in result.message
    state = engraver.state()
    assert not state.ok


def test_garbage_on_the_line_is_ignored_during_a_job(engraver):
    engraver.open()
    engraver.simulator.send_garbage(b"\xff\xfe\x00garbage\r\n\x80\x81\r\n")
    job = engraver.start_job(long_job(30))
    assert job.wait(20).ok
    assert engraver.conn.garbage >= 1


def test_wrong_baud_rate_is_named():
    sim = GrblSimulator(speed=100, banner=False)
    sim.garble = True
    try:
        e = Engraver(f"serial://{sim.port}?baud=9600", timeout=1.0)
        state = e.state()
        assert not state.ok and "baud rate" in state.message
    finally:
        sim.disconnect()


def test_missing_port_and_permission_denied(monkeypatch):
    state = Engraver("serial:///dev/ttyUSB_NOPE").state()
    assert not state.ok and "not connected" in state.message

    def denied(url, **kw):  # what pyserial raises for a /dev node we may not open
        raise serial.SerialException(13, f"could not open port {url}: [Errno 13] Permission denied")

    monkeypatch.setattr(serial, "serial_for_url", denied)
    state = Engraver("serial:///dev/ttyUSB0").state()
    assert not state.ok and "permission denied" in state.message
    assert "dialout" in state.message


def test_not_laser_mode_is_refused():
    sim = GrblSimulator(speed=100, settings={32: 0})
    try:
        e = Engraver(f"serial://{sim.port}", timeout=2.0)
        state = e.state()
        assert not state.ok and "$32=1" in state.message
        with pytest.raises(DeviceFault, match="laser mode"):
            e.start_job(["G0 X1"])
        e.set_laser_mode()
        assert e.state().ok
        e.close()
    finally:
        sim.disconnect()


def test_loop_url_works_through_serial_for_url():
    """loop:// echoes: no banner, so the handshake says 'did not answer', in time."""
    e = Engraver("loop://", timeout=1.0)
    state = e.state()
    assert not state.ok
    assert "did not answer" in state.message or "unreadable" in state.message


def test_status_report_parsing():
    s = GrblStatus.parse("<Hold:0|MPos:1.000,-2.500,0.000|FS:1200,700|Bf:15,128>")
    assert s.state == "Hold" and s.substate == 0 and s.mpos == (1.0, -2.5, 0.0)
    assert s.wpos is None  # no WCO known: the work position is not guessed
    # $10=0 reports WPos; WCO (sent now and then) gives the machine position
    w = GrblStatus.parse("<Idle|WPos:10.000,5.000,0.000|FS:0,0|WCO:-300.000,-200.000,0.000>")
    assert w.wpos == (10.0, 5.0, 0.0) and w.mpos == (-290.0, -195.0, 0.0)
    # a report without WCO uses the offset known from before
    m = GrblStatus.parse("<Run|MPos:-290.000,-195.000,0.000|FS:1200,0>", (-300.0, -200.0, 0.0))
    assert m.wpos == (10.0, 5.0, 0.0) and m.position == m.wpos
    assert s.feed == 1200 and s.power == 700 and s.fields["Bf"] == "15,128"
    assert GrblStatus.parse("<Idle|MPos:x>") is None
    assert GrblStatus.parse("ok") is None


def test_spy_url_hexdumps_the_traffic(tmp_path):
    sim = GrblSimulator(speed=100)
    dump = tmp_path / "spy.txt"
    try:
        e = Engraver(f"spy://{sim.port}?file={dump}", timeout=2.0)
        assert e.state().ok
        e.close()
    finally:
        sim.disconnect()
    text = dump.read_text()
    assert "VER:1.1h" in text and "$I" in text
