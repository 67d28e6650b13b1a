"""The self-test and enrollment against the drivers' own simulators (sim:// URLs)."""

from __future__ import annotations

import pytest
import tomli_w

from appliance.datadir import DataDir
from appliance.till import Till
from compliance import enroll
from compliance.photos import read_exif
from compliance.probes import DriversProbes
from compliance.selftest import run_selftest

pytest.importorskip("drivers.devices", reason="the drivers package provides open_devices")

DEVICE_CHECKS = ("printer", "engraver", "camera", "power", "earth")


def configure(ddir: DataDir, **hardware) -> None:
    config = ddir.load_config()
    config.update("hardware", **hardware)
    config.update("location", latitude=51.5007, longitude=-0.1246)
    ddir.config_path.write_text(tomli_w.dumps(config.data))


def selftest(ddir: DataDir, prepare=None) -> dict:
    probes = DriversProbes(ddir.load_config(), ddir)
    try:
        if prepare is not None:
            prepare(probes.devices())
        report = run_selftest(ddir, probes, record=False, time_synced=lambda: True)
    finally:
        probes.close()
    return {c.name: c for c in report.checks}


def test_simulated_rig_passes_every_device_check(enrolled):
    configure(enrolled)
    checks = selftest(enrolled)
    for name in DEVICE_CHECKS:
        assert checks[name].result == "pass", (name, checks[name].value)
    assert "laser mode on" in checks["engraver"].value
    assert "640x480" in checks["camera"].value


def test_simulated_faults_are_caught(enrolled):
    configure(enrolled, printer="sim://?paper=out", camera="sim://?missing=1")

    def break_things(devices):
        devices.engraver.open()
        devices.engraver.simulator.inject_alarm(1)
        devices.gpio.sim_drive("earth_sense", False)

    checks = selftest(enrolled, break_things)
    assert checks["printer"].result == "fail" and "paper" in checks["printer"].value
    assert checks["engraver"].result == "fail"
    assert checks["camera"].result == "fail" and "no camera detected" in checks["camera"].value
    assert checks["earth"].result == "fail" and checks["power"].result == "pass"


def test_enroll_with_simulated_camera_and_printed_asset_labels(till_dir):
    configure(till_dir)
    data = enroll.EnrollmentInput(
        operator="Ann",
        business="Stall",
        attestation="Checked.",
        confirmed=True,
        permits=[enroll.parse_permit("trading:TP-5:2099-01-01:camera")],
        photos=[enroll.parse_photo("stall:camera")],
        assets=[("ENG-1", "Laser engraver")],
    )
    probes = DriversProbes(till_dir.load_config(), till_dir)
    try:
        with Till.open(till_dir) as till:
            out = enroll.enroll(till, data, probes)
        sim = probes.devices().printer.simulator
        qrs = [b.data for b in sim.blocks if type(b).__name__ == "Qr"]
    finally:
        probes.close()
    assert out["labels_printed"] == ["ENG-1"] and qrs == ["TBA1*till-1*ENG-1"]
    photo = next((till_dir.root / "compliance" / "enrollment" / "0001" / "photos").iterdir())
    exif = read_exif(photo)
    assert exif["latitude"] == "51.500700" and exif["longitude"] == "-0.124600"


def test_shared_devices_are_used_and_left_open(enrolled):
    """The kiosk passes its own open devices; the self-test must not close them."""
    from drivers.devices import open_devices

    configure(enrolled)
    devices = open_devices(enrolled.load_config(), enrolled)
    try:
        printer = devices.printer
        probes = DriversProbes(enrolled.load_config(), enrolled, devices=devices)
        report = run_selftest(
            enrolled, probes, record=False, time_synced=lambda: True, trigger="kiosk"
        )
        probes.close()
        assert {c.name: c.result for c in report.checks}["printer"] == "pass"
        assert devices.printer is printer  # the same object, still there
        assert devices.state("printer").ok  # and still usable after probes.close()
    finally:
        devices.close()
