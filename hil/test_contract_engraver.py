"""GRBL engraver contract. On a real rig nothing here fires the laser: moves run with S0."""

from __future__ import annotations

import pytest

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
        assert engraver.simulator.executed == laser_off_job()


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
