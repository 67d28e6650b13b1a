"""GRBL engraver contract. On a real rig nothing here fires the laser: moves run with S0."""

from __future__ import annotations

import pytest

from drivers.common import DeviceFault
from drivers.toolpath import WorkArea, frame_gcode, material, text_to_toolpath

pytestmark = pytest.mark.hil


def laser_off_job(n=150):
    """Many short moves of varying length, laser off: exercises the 128-byte count."""
    lines = ["G21", "G90", "M5 S0", "F3000"]
    for i in range(n):
        lines.append(f"G1 X{(i * 7) % 20}.{i % 10} Y{(i * 3) % 10}.5 S0")
    return lines + ["G0 X0 Y0"]


def test_handshake_idle_laser_mode_no_alarm(engraver):
    engraver.open()
    info = engraver.handshake_info
    assert info.version.startswith("1.1")
    assert info.laser_mode, "set $32=1 on the controller"
    state = engraver.state()
    assert state.ok, state.message
    assert state.detail["state"] == "Idle" and state.detail["alarm"] is None


def test_streams_a_long_job_with_character_counting(engraver):
    engraver.open()
    job = engraver.start_job(laser_off_job())
    result = job.wait(120)
    assert result is not None and result.ok, result
    assert job.max_in_flight <= 128
    if engraver.simulator is not None:
        assert engraver.simulator.dropped == 0
        job, executed = laser_off_job(), engraver.simulator.executed
        assert executed[-len(job) :] == job  # whole and in order
        # before it only the work offset (a homing machine's, written once)
        assert executed[: -len(job)] in ([], ["G10 L2 P1 X-300.000 Y-200.000"])


def test_dry_run_frame(engraver):
    path = text_to_toolpath("HIL", material("wood"), WorkArea(40, 15))
    engraver.open()
    result = engraver.start_job(frame_gcode(path)).wait(60)
    assert result.ok
    if engraver.simulator is not None:
        assert engraver.simulator.burns == []


def test_hold_resume_and_cancel(engraver):
    engraver.open()
    job = engraver.start_job(laser_off_job(300), poll_s=0.05)
    job.hold()
    job.resume()
    job.cancel()
    result = job.wait(60)
    assert result.outcome in ("cancelled", "completed")
    assert engraver.state().ok  # ready again, no alarm


def test_a_job_beyond_the_travel_is_refused_before_it_is_sent(engraver):
    """Safe on a rig: the refusal comes before any byte of the job."""
    travel_x = engraver.space().travel[0]
    path = text_to_toolpath("HIL", material("wood"), WorkArea(40, 15, origin_x_mm=travel_x - 10))
    sim = engraver.simulator
    executed = len(sim.executed) if sim is not None else 0
    with pytest.raises(DeviceFault, match=r"leaves the engraver's travel.*\$130="):
        engraver.start_job(frame_gcode(path))
    if sim is not None:
        assert len(sim.executed) == executed
    assert engraver.state().ok


def test_frame_ends_at_the_work_origin_in_work_coordinates(engraver):
    """Work X0 Y0 is the bed's corner on homing and non-homing machines alike."""
    path = text_to_toolpath("HIL", material("wood"), WorkArea(16, 8, origin_x_mm=3, origin_y_mm=2))
    assert engraver.start_job(frame_gcode(path)).wait(60).ok
    status = engraver.status()
    assert status.wpos[:2] == pytest.approx((3.0, 2.0), abs=0.01)
    low_x, low_y = engraver.space().bed_offset()
    assert status.mpos[:2] == pytest.approx((3.0 + low_x, 2.0 + low_y), abs=0.01)
