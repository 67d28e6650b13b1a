"""The simulated card against RAUC's documented behaviour, and against real RAUC itself.

The parity test runs the same steps on the simulator and on the rig (real `rauc
service`, real fw_setenv) and compares the U-Boot environment and the slots after each:
the simulator is only worth its tests if it does what RAUC does.
"""

from __future__ import annotations

import json

import pytest

from appliance.updates import BundleRejected, Updater, UpdaterError
from drivers import uboot
from drivers.update_sim import PowerCut, SimulatedUpdater

from .conftest import COMPATIBLE


@pytest.fixture
def sim(tmp_path, kit) -> SimulatedUpdater:
    return SimulatedUpdater(
        tmp_path / "card", compatible=COMPATIBLE, keyring=kit.cert, factory_version="1.0.0"
    )


def view(updater: Updater) -> tuple:
    """What both report. The simulator knows the version the image flashed into slot A
    (as a card whose image seeds RAUC's status would); real RAUC here does not."""
    s = updater.status()

    def version(slot) -> str | None:
        return None if slot.version == "1.0.0" else slot.version

    slots = (version(s.booted), version(s.other))
    return (s.booted.bootname, s.primary, s.booted.good, s.other.good, *slots)


def test_a_fresh_card(sim):
    assert isinstance(sim, Updater)
    status = sim.status()
    assert (status.booted.bootname, status.booted.version, status.primary) == ("A", "1.0.0", "A")
    assert uboot.read(sim.env_path) == {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"}


def test_install_boot_commit(sim, kit):
    sim.install(kit.bundle("2.1.0", COMPATIBLE))
    rootfs = (kit.folder / "rootfs-2.1.0.ext4").read_bytes()
    assert sim.slot_path("B").read_bytes() == rootfs
    assert view(sim) == ("A", "B", True, True, None, "2.1.0")
    sim.reboot()
    assert view(sim) == ("B", "B", True, True, "2.1.0", None)
    assert uboot.read(sim.env_path)["BOOT_B_LEFT"] == "2"
    sim.mark_good()
    assert uboot.read(sim.env_path)["BOOT_B_LEFT"] == "3"


def test_never_healthy_falls_back_after_three_attempts(sim, kit):
    sim.install(kit.bundle("2.1.0", COMPATIBLE))
    assert [sim.power_on() for _ in range(4)] == ["B", "B", "B", "A"]
    status = sim.status()
    assert status.primary == "A" and not status.other.good and status.other.version == "2.1.0"


def test_a_power_cut_mid_install_leaves_the_target_unbootable(sim, kit):
    (sim.folder / "faults.json").write_text(json.dumps({"power_cut_after_bytes": 1 << 20}))
    with pytest.raises(PowerCut):
        sim.install(kit.bundle("2.1.0", COMPATIBLE))
    assert sim.slot_path("B").stat().st_size == 1 << 20  # half written
    (sim.folder / "faults.json").unlink()
    card = SimulatedUpdater(
        sim.folder, compatible=COMPATIBLE, keyring=kit.cert, factory_version="x"
    )
    with pytest.raises(UpdaterError, match="off"):
        card.status()  # the power is off until it comes back
    assert card.power_on() == "A"
    status = card.status()
    assert status.primary == "A" and not status.other.good
    assert status.other.version is None  # RAUC writes the slot's status only when it is done
    card.install(kit.bundle("2.1.0", COMPATIBLE))  # and the next install starts afresh
    assert card.power_on() == "B"


def test_refused_bundles_change_nothing(sim, kit, other_kit, tmp_path, flip):
    before = (sim.env_path.read_bytes(), sim.slot_path("B").read_bytes())
    good = kit.bundle("2.1.0", COMPATIBLE, bundle_format="verity")
    with pytest.raises(BundleRejected, match="changed or damaged"):
        sim.install(flip(good, tmp_path / "bad.raucb", 6000))
    with pytest.raises(BundleRejected, match="not signed by a release key"):
        sim.install(other_kit.bundle("2.1.0", COMPATIBLE))
    with pytest.raises(UpdaterError, match="Compatible mismatch"):
        sim.install(kit.bundle("2.1.0", "tillbox-rpi4"))
    assert (sim.env_path.read_bytes(), sim.slot_path("B").read_bytes()) == before


def test_the_same_image_is_not_written_twice(sim, kit):
    bundle = kit.bundle("2.1.0", COMPATIBLE)
    sim.install(bundle)
    steps = []
    sim.install(bundle, lambda pct, what: steps.append(what))
    assert "Skipping update for correct image" in steps


def test_the_simulator_does_what_real_rauc_does(tmp_path, kit, rig, installs):
    """Step by step, the same environment and the same slots on both."""
    sim = SimulatedUpdater(
        tmp_path / "card", compatible=COMPATIBLE, keyring=kit.cert, factory_version="1.0.0"
    )
    real = rig.updater()
    v2, v3 = kit.bundle("2.1.0", COMPATIBLE), kit.bundle("3.0.0", COMPATIBLE)

    def same(step: str) -> None:
        assert uboot.read(sim.env_path) == rig.fw_printenv(), step
        assert view(sim) == view(real), step

    same("fresh, booted")
    for updater in (sim, real):
        updater.install(v2)
    same("installed 2.1.0")
    sim.reboot()
    rig.power_on()
    same("booted into 2.1.0")
    for updater in (sim, real):
        updater.mark_good()
    same("2.1.0 committed")
    for updater in (sim, real):
        updater.install(v3)
    same("installed 3.0.0 into A")
    for _ in range(4):  # 3.0.0 never comes up healthy
        sim.reboot()
        rig.power_on()
        same("a boot of the unhealthy 3.0.0")
    assert sim.status().booted.bootname == "B"
    for updater in (sim, real):
        updater.mark_bad()
    same("marked bad")
