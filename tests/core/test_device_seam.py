"""The core finds the device drivers through the ``tillbox.devices`` entry point, so the
kiosk and the self-test never import a driver (the drivers <-> ui independence)."""

from __future__ import annotations

import pytest

from appliance import devices as seams
from appliance.datadir import DataDir


def test_the_installed_drivers_implement_the_seams(tmp_path):
    from appliance.cli import main

    assert main(["init", "--data-dir", str(tmp_path / "t"), "--device-id", "t1", "--demo"]) == 0
    ddir = DataDir(tmp_path / "t")
    found = seams.open_devices(ddir.load_config(), ddir)
    try:
        assert isinstance(found, seams.DeviceSet)
        assert isinstance(found.printer, seams.Printer)
        assert isinstance(found.engraver, seams.Engraver)
        assert isinstance(found.camera, seams.Camera)
        plan = found.toolpath("Ana")
        assert plan.gcode and plan.text == "Ana"
        assert found.work_area().width_mm > 0
    finally:
        found.close()


def test_no_drivers_installed_is_one_clear_error(monkeypatch, tmp_path):
    from appliance import plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    with pytest.raises(seams.DeviceError, match="no device drivers are installed.*make venv"):
        seams.open_devices(None, None)  # type: ignore[arg-type]
