"""Camera (sim backend, EXIF) and GPIO (gpiozero MockFactory) against the till's log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PIL import ExifTags, Image

from appliance.services.photos import capture_photo
from appliance.services.power import record_gpio_reports
from drivers.camera import Camera, read_gps
from drivers.common import DeviceFault
from drivers.gpio import Gpio
from drivers.testing import wait_for


def events_of(till, type_):
    return [e for e in till.log.events(0) if e.type == type_]


def test_photo_exif_time_device_and_geotag(tmp_path):
    cam = Camera("sim://", "till-7", {"latitude": 51.7592, "longitude": 19.4560})
    when = datetime(2026, 6, 1, 12, 30, 5, tzinfo=UTC)
    photo = cam.capture(tmp_path / "p.jpg", purpose="inspection", taken_at=when)
    with Image.open(photo.path) as img:
        assert img.format == "JPEG" and img.size == (640, 480)
        exif = img.getexif()
        inner = exif.get_ifd(ExifTags.IFD.Exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert exif[ExifTags.Base.Make] == "tillbox"
    assert exif[ExifTags.Base.ImageDescription] == "inspection"
    assert inner[ExifTags.Base.DateTimeOriginal] == "2026:06:01 12:30:05"
    assert inner[ExifTags.Base.BodySerialNumber] == "till-7"
    assert gps[ExifTags.GPS.GPSLatitudeRef] == "N" and gps[ExifTags.GPS.GPSLongitudeRef] == "E"
    lat, lon = read_gps(photo.path)
    assert lat == pytest.approx(51.7592, abs=1e-6) and lon == pytest.approx(19.4560, abs=1e-6)
    assert photo.path.read_bytes() == photo.data


def test_southern_western_positions_and_no_location(tmp_path):
    cam = Camera("sim://", "t", {"latitude": -33.8688, "longitude": -70.6693})
    lat, lon = read_gps(cam.capture(tmp_path / "s.jpg").path)
    assert lat == pytest.approx(-33.8688, abs=1e-6) and lon == pytest.approx(-70.6693, abs=1e-6)
    unset = Camera("sim://", "t", {"latitude": 0.0, "longitude": 0.0})
    assert read_gps(unset.capture(tmp_path / "u.jpg").path) is None
    assert "not geotagged" in unset.state().message
    with pytest.raises(DeviceFault, match="not a place on Earth"):
        Camera("sim://", "t", {"latitude": 123, "longitude": 0})


def test_sim_frames_are_deterministic_and_recognisable():
    a = Camera("sim://").open().capture()
    b = Camera("sim://").open().capture()
    assert a.tobytes() == b.tobytes()
    assert a.getpixel((5, 5)) == (255, 255, 255)  # first colour bar
    assert a.getpixel((639, 5)) == (0, 0, 0)  # last colour bar


def test_capture_records_photo_captured(till):
    cam = Camera("sim://", till.device_id, {"latitude": 48.1, "longitude": 11.5})
    photo, seq = capture_photo(till, cam, purpose="onboarding")
    assert photo.path.parent == till.data_dir.media_dir and photo.path.exists()
    [event] = events_of(till, "photo.captured")
    assert event.seq == seq
    assert event.payload["sha256"] == photo.sha256
    assert event.payload["lat_e7"] == 481000000 and event.payload["lon_e7"] == 115000000
    assert event.payload["file"].startswith("media/photo-")


def test_missing_camera_and_missing_picamera2(tmp_path):
    state = Camera("sim://?missing=1").state()
    assert not state.ok and "no camera detected" in state.message
    with pytest.raises(DeviceFault, match="no camera"):
        Camera("sim://?missing=1").capture(tmp_path / "x.jpg")
    assert not (tmp_path / "x.jpg").exists()
    state = Camera("picamera2://").state()  # not a Pi: the library is missing
    assert not state.ok and "python3-picamera2" in state.message
    assert Camera("sim://").probe()["ok"]
    with pytest.raises(DeviceFault, match="does not exist"):
        Camera("sim://").capture(tmp_path / "nope" / "x.jpg")


@pytest.fixture
def gpio():
    g = Gpio("sim://")
    g.open()
    yield g
    g.close()


def test_power_loss_and_return_are_events(till, gpio):
    seen = []
    gpio.on_event.append(lambda t, p: seen.append(t))
    assert gpio.mains_present and gpio.state().ok
    gpio.sim_drive("power_good", False)
    assert seen == ["power.lost"]
    state = gpio.state()
    assert state.detail["on_battery"] and "battery" in state.message
    gpio.sim_drive("power_good", True)
    assert record_gpio_reports(till, gpio) == 2
    assert [e.type for e in till.log.events(0)][-2:] == ["power.lost", "power.restored"]
    assert record_gpio_reports(till, gpio) == 0  # nothing is recorded twice


def test_earth_loss_is_a_fault_and_a_failed_state(till, gpio):
    gpio.sim_drive("earth_sense", False)
    state = gpio.state()
    assert not state.ok and "earth" in state.message and state.detail["earth_ok"] is False
    record_gpio_reports(till, gpio)
    [fault] = events_of(till, "device.fault")
    assert fault.payload["device"] == "earth"


def test_drawer_switch_led_and_buzzer(gpio):
    changes = []
    gpio.on_drawer.append(changes.append)
    gpio.sim_drive("drawer_switch", True)
    assert gpio.drawer_open
    gpio.sim_drive("drawer_switch", False)
    assert changes == [True, False]
    gpio.led("on")
    assert gpio.factory.pin(gpio.pins["led"]).state
    gpio.led("off")
    assert not gpio.factory.pin(gpio.pins["led"]).state
    gpio.beep(0.01, times=1)
    pin = gpio.factory.pin(gpio.pins["buzzer"])
    wait_for(lambda: [st.state for st in pin.states][-3:] == [False, True, False], 5, "one beep")
    assert gpio.probe()["power_good"] is True


def test_pin_map_from_config_and_bad_backends():
    g = Gpio("sim://", {"power_good": 5, "led": 6})
    g.open()
    try:
        assert g.pins["power_good"] == 5 and g.read("power_good")
    finally:
        g.close()
    state = Gpio("gpiozero://").state()
    assert not state.ok and "sim://" in state.message
    assert not Gpio("gpiozero://?factory=nosuch").state().ok
    with pytest.raises(DeviceFault, match="only sim://"):
        Gpio("gpiozero://").sim_drive("power_good", False)
