"""Hardware-in-the-loop fixtures: each device is the simulator, and also the real one
when an environment variable names it.

    TILLBOX_HIL_PRINTER=tcp://10.0.0.5:9100   (or usb://04b8:0202, serial:///dev/ttyUSB1)
    TILLBOX_HIL_PRINTER_PROFILE=TM-T20II       TILLBOX_HIL_PAPER_MM=80
    TILLBOX_HIL_ENGRAVER=serial:///dev/ttyUSB0?baud=115200
    TILLBOX_HIL_ENGRAVER_HOME=1               (a homing engraver may run $H: the bed is clear)
    TILLBOX_HIL_CAMERA=picamera2://
    TILLBOX_HIL_GPIO=gpiozero://
    TILLBOX_HIL_LOCK=/run/lock/tillbox-hil.lock   (default: $TMPDIR/tillbox-hil.lock)

Every contract test runs once per backend: ``[sim]`` always, ``[real]`` only when its
variable is set (otherwise it is skipped and says which variable to set). A lock file
keeps two runs off one rig.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from appliance.testing import open_demo_till
from drivers.testing import RigLock, RigLocked

ENV = {
    "printer": "TILLBOX_HIL_PRINTER",
    "engraver": "TILLBOX_HIL_ENGRAVER",
    "camera": "TILLBOX_HIL_CAMERA",
    "gpio": "TILLBOX_HIL_GPIO",
}


def real_url(kind: str) -> str | None:
    return os.environ.get(ENV[kind]) or None


@pytest.fixture(scope="session")
def rig_lock():
    """Held for the whole session as soon as one real device is used."""
    if not any(real_url(k) for k in ENV):
        yield None
        return
    path = os.environ.get("TILLBOX_HIL_LOCK") or os.path.join(
        tempfile.gettempdir(), "tillbox-hil.lock"
    )
    try:
        lock = RigLock(path).acquire()
    except RigLocked as exc:
        pytest.exit(str(exc), returncode=3)
    yield lock
    lock.release()


def _url(request, kind: str, rig_lock) -> tuple[str, bool]:
    if request.param == "sim":
        return "sim://", True
    url = real_url(kind)
    if not url:
        pytest.skip(f"no real {kind}: set {ENV[kind]}=URL to run this against hardware")
    return url, False


@pytest.fixture(params=["sim", "real"])
def printer(request, rig_lock):
    from drivers.printer import ReceiptPrinter

    url, sim = _url(request, "printer", rig_lock)
    p = ReceiptPrinter(
        url,
        os.environ.get("TILLBOX_HIL_PRINTER_PROFILE", "default"),
        int(os.environ.get("TILLBOX_HIL_PAPER_MM", "80")),
        timeout=3.0,
    )
    yield p
    p.shutdown()


@pytest.fixture(params=["sim", "sim-homing", "real"])
def engraver(request, rig_lock):
    """The engraver, ready: a homing machine ($22=1) is homed first.

    ``sim-homing`` is the simulator with homing and soft limits ($22=1, $20=1), whose
    machine space is negative. A real rig with homing is homed only when
    ``TILLBOX_HIL_ENGRAVER_HOME=1`` says the bed is clear.
    """
    from drivers.grbl import Engraver

    if request.param == "sim-homing":
        e = Engraver("sim://?speed=200&homing=1", timeout=5.0)
    else:
        url, sim = _url(request, "engraver", rig_lock)
        e = Engraver("sim://?speed=200" if sim else url, timeout=5.0)
    e.open()
    if e.conn.homing and e.status().state == "Alarm":
        if request.param == "real" and os.environ.get("TILLBOX_HIL_ENGRAVER_HOME") != "1":
            e.shutdown()
            pytest.skip(
                "the rig's engraver has homing on: set TILLBOX_HIL_ENGRAVER_HOME=1 to home it"
            )
        e.home()
    yield e
    e.shutdown()


@pytest.fixture(params=["sim", "real"])
def camera(request, rig_lock):
    from drivers.camera import Camera

    url, _sim = _url(request, "camera", rig_lock)
    c = Camera(url, "hil-rig", {"latitude": 52.52, "longitude": 13.405})
    yield c
    c.close()


@pytest.fixture(params=["sim", "real"])
def gpio(request, rig_lock):
    from drivers.gpio import Gpio

    url, _sim = _url(request, "gpio", rig_lock)
    g = Gpio(url)
    yield g
    g.close()


@pytest.fixture
def till(tmp_path):
    with open_demo_till(tmp_path / "till", "hil-rig") as t:
        yield t
