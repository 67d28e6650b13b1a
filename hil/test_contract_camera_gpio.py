"""Camera and GPIO contracts."""

from __future__ import annotations

import pytest
from PIL import Image

from drivers.camera import read_gps
from drivers.gpio import INPUTS

pytestmark = pytest.mark.hil


def test_camera_captures_a_geotagged_jpeg(camera, tmp_path):
    assert camera.state().ok
    photo = camera.capture(tmp_path / "hil.jpg", purpose="hil")
    with Image.open(photo.path) as img:
        assert img.format == "JPEG" and img.width >= 640
    lat, lon = read_gps(photo.path)
    assert round(lat, 3) == 52.52 and round(lon, 3) == 13.405


def test_gpio_reads_exactly_the_inputs_tillbox_uses(gpio):
    assert set(gpio.inputs()) == set(INPUTS)


@pytest.mark.parametrize("name", INPUTS)
def test_gpio_input_reads_a_level(gpio, name):
    assert isinstance(gpio.inputs()[name], bool)


def test_gpio_power_good_is_high_on_mains(gpio):
    assert gpio.inputs()["power_good"] is True, "the rig runs on mains: power-good must be high"


@pytest.mark.parametrize("mode", ["on", "off"])
def test_gpio_led_output_drives(gpio, mode):
    gpio.led("off" if mode == "on" else "on")  # start from the other level
    gpio.led(mode)
    assert gpio.output_state("led") is (mode == "on")
