"""Camera and GPIO contracts."""

from __future__ import annotations

import pytest
from PIL import Image

from drivers.camera import read_gps

pytestmark = pytest.mark.hil


def test_camera_captures_a_geotagged_jpeg(camera, tmp_path):
    assert camera.state().ok
    photo = camera.capture(tmp_path / "hil.jpg", purpose="hil")
    with Image.open(photo.path) as img:
        assert img.format == "JPEG" and img.width >= 640
    lat, lon = read_gps(photo.path)
    assert round(lat, 3) == 52.52 and round(lon, 3) == 13.405


def test_gpio_inputs_read_and_outputs_drive(gpio):
    inputs = gpio.inputs()
    assert set(inputs) == {"power_good", "earth_sense", "drawer_switch"}
    assert inputs["power_good"] is True, "the rig runs on mains: power-good must be high"
    gpio.led("on")
    assert gpio.output_state("led")
    gpio.led("off")
    assert not gpio.output_state("led")
