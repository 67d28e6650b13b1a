"""The RAUC backend (drivers.rauc.RaucUpdater) against Debian's real rauc 1.8.

The rig runs `rauc service` on a private D-Bus bus with two file-backed ext4 slots and
RAUC's U-Boot backend writing a U-Boot environment file through libubootenv's
fw_setenv; it boots by RAUC's boot script. Installing needs a loop device (root) for
the plain bundle RAUC mounts; verity bundles also need device-mapper, which this
machine lacks (the QEMU update test installs those).
"""

from __future__ import annotations

import threading
import time

import pytest

from appliance.updates import BundleRejected, Updater, UpdaterBusy, UpdaterError
from drivers import rauc

from .conftest import COMPATIBLE


def test_status_of_a_fresh_card(rig):
    updater = rig.updater()
    assert isinstance(updater, Updater)
    status = updater.status()
    assert status.compatible == COMPATIBLE
    assert (status.booted.bootname, status.booted.state) == ("A", "booted")
    assert (status.other.bootname, status.other.state) == ("B", "inactive")
    assert status.primary == "A" and status.booted.good and status.other.good
    assert status.booted.version is None  # flashed by the image, not installed by RAUC


def test_inspect_verifies_with_the_systems_keyring(rig, kit, other_kit):
    updater = rig.updater()
    info = updater.inspect(kit.bundle("2.1.0", COMPATIBLE))
    assert (info.version, info.compatible) == ("2.1.0", COMPATIBLE)
    assert "tillbox test release" in info.signer
    with pytest.raises(BundleRejected, match="not signed by a release key"):
        updater.inspect(other_kit.bundle("2.1.0", COMPATIBLE))


def test_install_writes_the_other_slot_and_makes_it_first(rig, kit, installs):
    updater = rig.updater()
    bundle = kit.bundle("2.1.0", COMPATIBLE)
    seen = []
    updater.install(bundle, lambda pct, what: seen.append((pct, what)))
    assert seen and seen[-1][0] == 100
    rootfs = (kit.folder / "rootfs-2.1.0.ext4").read_bytes()
    assert rig.slots["B"].read_bytes()[: len(rootfs)] == rootfs
    assert rig.slots["A"].read_bytes().count(0) == rig.slots["A"].stat().st_size  # untouched
    assert rig.fw_printenv() == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"}
    status = updater.status()
    assert status.primary == "B" and status.other.version == "2.1.0"
    assert status.booted.bootname == "A"  # still running the old one until the reboot

    # the reboot: U-Boot's script boots B; the new system commits itself
    assert rig.power_on() == "B"
    assert rig.fw_printenv()["BOOT_B_LEFT"] == "2"
    updater.mark_good()
    assert rig.fw_printenv()["BOOT_B_LEFT"] == "3"
    status = updater.status()
    assert (status.booted.bootname, status.booted.version) == ("B", "2.1.0")


def test_a_new_slot_never_marked_good_falls_back(rig, kit, installs):
    updater = rig.updater()
    updater.install(kit.bundle("2.1.0", COMPATIBLE))
    assert [rig.power_on() for _ in range(4)] == ["B", "B", "B", "A"]
    status = updater.status()
    assert status.booted.bootname == "A" and status.primary == "A"
    assert not status.other.good  # RAUC's own boot status for B: bad


def test_mark_bad_sends_the_next_boot_back(rig, kit, installs):
    updater = rig.updater()
    updater.install(kit.bundle("2.1.0", COMPATIBLE))
    assert rig.power_on() == "B"
    updater.mark_bad()
    assert rig.fw_printenv()["BOOT_ORDER"] == "A"
    assert rig.power_on() == "A"


def test_refused_bundles_write_nothing(rig, kit, other_kit, tmp_path, flip, installs):
    updater = rig.updater()
    before = (rig.env_path.read_bytes(), rig.slots["B"].read_bytes())
    good = kit.bundle("2.1.0", COMPATIBLE)
    with pytest.raises(BundleRejected):
        updater.install(flip(good, tmp_path / "bad.raucb", 5000))
    with pytest.raises(BundleRejected):
        updater.install(other_kit.bundle("2.1.0", COMPATIBLE))
    truncated = tmp_path / "cut.raucb"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(BundleRejected):
        updater.install(truncated)
    with pytest.raises(UpdaterError, match="other hardware"):
        updater.install(kit.bundle("2.1.0", "tillbox-rpi4"))
    assert (rig.env_path.read_bytes(), rig.slots["B"].read_bytes()) == before


def test_no_service_is_one_line(rig):
    rig.power_off()
    with pytest.raises(UpdaterError) as err:
        rig.updater().status()
    assert "rauc status failed" in str(err.value) and "\n" not in str(err.value)


def test_status_while_installing_says_rauc_is_busy(rig, kit, installs, tmp_path):
    """RAUC's service answers one call at a time: while it installs, its status is
    refused ("already processing a different method", seen under QEMU). Held in RAUC's
    own pre-install handler until the test lets it go."""
    started, release = tmp_path / "started", tmp_path / "release"
    handler = tmp_path / "hold.sh"
    handler.write_text(
        f"#!/bin/sh\ntouch {started}\ni=0\n"
        f"while [ ! -e {release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n"
    )
    handler.chmod(0o755)
    with rig.conf.open("a") as f:
        f.write(f"\n[handlers]\npre-install={handler}\n")
    rig.power_on()  # the service reads its system.conf at start
    updater = rig.updater()
    bundle = kit.bundle("2.1.0", COMPATIBLE)
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(updater.install(bundle)))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), f"the install never reached its handler: {outcome}"
        with pytest.raises(UpdaterBusy) as err:
            updater.status()
        assert "rauc is installing an update" in str(err.value)
        assert "\n" not in str(err.value)
    finally:
        release.touch()
        worker.join(120)
    assert outcome == [None]  # the install itself went through
    assert updater.status().primary == "B"


def test_status_parser_refuses_what_it_does_not_know():
    with pytest.raises(UpdaterError, match="rauc's status"):
        rauc.parse_status('{"compatible": "x", "booted": "A", "slots": []}')
    with pytest.raises(UpdaterError):
        rauc.parse_status("not json")
