"""The QEMU image tests' helpers (systest.qemu), without QEMU: the provisioning file they
put on the card is one the card's provisioning accepts, and the machine's command line
has the network rules the tests rely on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from systest.qemu import BROKER_PASSWORD, DEVICE, HOST_IP, provisioning, qemu_command

REGION_KEY = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"


def test_the_qemu_provisioning_file_passes_the_cards_own_check(provision_module, tmp_path):
    from systest.https import make_cert

    cert, _key = make_cert(tmp_path, extra_sans=(f"IP:{HOST_IP}",))
    plain = provision_module.parse(provisioning(REGION_KEY))
    assert (plain.device_id, plain.password, plain.broker) == (
        DEVICE, BROKER_PASSWORD, f"mqtt://{HOST_IP}:1883"
    )  # fmt: skip
    assert plain.region_ca is None and plain.download_rate is None
    full = provision_module.parse(
        provisioning(REGION_KEY, region_ca=cert.read_text(), download_rate=0)
    )
    assert full.region_ca == cert.read_text().strip() + "\n" and full.download_rate == 0


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
def test_each_service_gets_its_own_guestfwd_rule(tmp_path):
    cmd = qemu_command(tmp_path / "console.log", [tmp_path / "card.img"], {1883: 40001},
                       relays={8443: 40002})  # fmt: skip
    netdev = cmd[cmd.index("-netdev") + 1].split(",")
    assert netdev[:3] == ["user", "id=net", "restrict=on"]
    assert f"guestfwd=tcp:{HOST_IP}:1883-tcp:127.0.0.1:40001" in netdev
    relay = [rule for rule in netdev if rule.startswith(f"guestfwd=tcp:{HOST_IP}:8443-cmd:")]
    assert len(relay) == 1 and relay[0].endswith(" STDIO TCP:127.0.0.1:40002"), netdev
    assert "-no-reboot" in cmd and "virtio-tablet-pci" not in cmd


def test_the_display_is_the_panels_size_with_a_touch_pointer(tmp_path):
    cmd = qemu_command(Path("c.log"), [Path("card.img"), Path("test.img")], {}, display=True,
                       qmp=tmp_path / "qmp.sock")  # fmt: skip
    assert "virtio-gpu-pci,xres=800,yres=480,romfile=" in cmd and "virtio-tablet-pci" in cmd
    assert cmd.count("-drive") == 2 and f"unix:{tmp_path / 'qmp.sock'},server=on,wait=off" in cmd
