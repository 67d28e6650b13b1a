"""`tillbox update ...` on a till whose card is the simulator, and the boot-time check.

Bundles are real (signed by the kit's release key, checked by real rauc); the log is
the till's real log; the card is the simulated one (U-Boot's boot counting included).
"""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import events as ev
from appliance.datadir import DataDir
from appliance.saleopen import SaleMark
from appliance.services import updates as service
from appliance.testing import run_cli
from appliance.till import Till
from appliance.updates import Health
from drivers.update_sim import PowerCut
from drivers.updates import open_updater, sim_folder

from .conftest import COMPATIBLE

HEALTHY = Health(selftest="pass", kiosk_ready=True, sync_started=True)
KIOSK_DIES = Health(selftest="pass", kiosk_ready=False, sync_started=True)


def cli(ddir: DataDir, *argv: str):
    return run_cli("update", *argv, "--data-dir", str(ddir.root))


def error_lines(result) -> list[str]:
    """stderr without the install's progress lines ("  40% Copying image ...")."""
    return [ln for ln in result.err.splitlines() if not re.match(r"^\s*\d{1,3}% ", ln)]


def one_line_error(result, code: int) -> str:
    assert result.code == code, result
    [line] = error_lines(result)
    assert line.startswith("tillbox: error: ") and "internal error" not in line, result
    return line


def update_events(ddir: DataDir) -> list[tuple[str, dict]]:
    with Till.open(ddir) as till:
        return [(e.type, e.payload) for e in till.log.events() if e.type.startswith("update.")]


def card(ddir: DataDir):
    with Till.open(ddir) as till:
        return open_updater(till.config, ddir)


def test_status_of_a_new_till(sim_till):
    result = cli(sim_till, "status", "--json")
    assert result.code == 0, result
    out = result.json()
    assert out["backend"] == "sim://" and out["pending"] == "none"
    assert out["slots"]["booted"]["bootname"] == "A"
    assert out["slots"]["compatible"] == COMPATIBLE
    text = cli(sim_till, "status").out
    assert f"running {out['running_version']} from slot A" in text


def test_install_from_a_usb_stick_then_reboot_and_commit(sim_till, kit, tmp_path):
    stick = tmp_path / "usb"
    stick.mkdir()
    (stick / "tillbox-2.1.0.raucb").write_bytes(kit.bundle("2.1.0", COMPATIBLE).read_bytes())
    (stick / "notes.txt").write_text("not a bundle")
    result = cli(sim_till, "install", str(stick), "--json")
    assert result.code == 0, result
    assert result.json()["to_version"] == "2.1.0" and result.json()["to_slot"] == "B"
    assert not list((sim_till.root / "updates" / "incoming").iterdir())  # the copy is gone
    assert [t for t, _ in update_events(sim_till)] == [ev.UPDATE_STARTED, ev.UPDATE_INSTALLED]
    started = update_events(sim_till)[0][1]
    assert (started["from_version"], started["to_version"], started["bundle"]) == (
        "0.1.0",
        "2.1.0",
        "tillbox-2.1.0.raucb",
    )
    assert cli(sim_till, "status", "--json").json()["pending"] == "awaiting_reboot"
    assert cli(sim_till, "reboot").code == 0
    assert cli(sim_till, "status", "--json").json()["pending"] == "trial"
    result = cli(sim_till, "mark-good", "--json")
    assert result.code == 0 and result.json()["committed"], result
    types = [t for t, _ in update_events(sim_till)]
    assert types[-1] == ev.UPDATE_COMMITTED
    status = cli(sim_till, "status", "--json").json()
    assert status["running_version"] == "2.1.0" and status["pending"] == "none"
    assert run_cli("log", "verify", "--data-dir", str(sim_till.root)).code == 0


def test_a_technician_installs_during_a_shift_but_never_during_a_sale(sim_till, kit):
    bundle = str(kit.bundle("2.1.0", COMPATIBLE))
    with Till.open(sim_till) as till:
        till.open_shift()
    mark = SaleMark(sim_till)
    mark.set(True)  # the kiosk has a cart on its screen
    try:
        assert "a sale is open" in one_line_error(cli(sim_till, "install", bundle), 1)
        assert "a sale is open" in one_line_error(cli(sim_till, "reboot"), 1)
    finally:
        mark.close()
    assert update_events(sim_till) == []
    assert cli(sim_till, "install", bundle).code == 0  # the shift is open: a technician may


def test_the_till_itself_waits_for_the_shift_to_close(sim_till, kit):
    with Till.open(sim_till) as till:
        till.open_shift()
        updater = open_updater(till.config, sim_till)
        with pytest.raises(Exception, match="a shift is open"):
            service.install(till, updater, kit.bundle("2.1.0", COMPATIBLE), by="schedule")


def test_a_downgrade_is_refused_unless_forced_and_forcing_is_logged(sim_till, kit):
    assert cli(sim_till, "install", str(kit.bundle("2.1.0", COMPATIBLE))).code == 0
    assert cli(sim_till, "reboot").code == 0
    assert cli(sim_till, "mark-good").code == 0
    older = str(kit.bundle("2.0.0", COMPATIBLE))
    err = one_line_error(cli(sim_till, "install", older), 1)
    assert "older than the running 2.1.0" in err and "--force-downgrade" in err
    same = one_line_error(cli(sim_till, "install", str(kit.bundle("2.1.0", COMPATIBLE))), 1)
    assert "the version it already runs" in same
    result = cli(sim_till, "install", older, "--force-downgrade")
    assert result.code == 0 and "forced downgrade" in result.out, result
    started = [p for t, p in update_events(sim_till) if t == ev.UPDATE_STARTED][-1]
    assert started["forced"] and started["downgrade"] and started["to_version"] == "2.0.0"


def test_every_refusal_is_one_line_and_installs_nothing(sim_till, kit, other_kit, tmp_path, flip):
    good = kit.bundle("2.1.0", COMPATIBLE, bundle_format="verity")
    sim = sim_folder(sim_till)
    cli(sim_till, "status")  # the card exists
    before = ((sim / "uboot.env").read_bytes(), (sim / "slot-B.img").read_bytes())
    truncated = tmp_path / "cut.raucb"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size - 100])
    empty_stick = tmp_path / "stick"
    empty_stick.mkdir()
    plain = kit.bundle("2.1.0", COMPATIBLE, bundle_format="plain")
    # the last byte of the signer's certificate inside the CMS signature: its own signature
    # value, so the DER still parses (a byte elsewhere may break the CMS structure instead)
    cert_der = ssl.PEM_cert_to_DER_cert(kit.cert.read_text())
    cert_end = good.read_bytes().index(cert_der) + len(cert_der) - 1
    cases = [
        (flip(plain, tmp_path / "bad.raucb", 6000), 4, "changed or damaged after it was signed"),
        # a byte changed in the signature's certificate: it no longer chains to the keyring
        (flip(good, tmp_path / "badsig.raucb", cert_end), 4, "badsig.raucb is not signed by a"),
        (truncated, 4, "not a complete RAUC bundle"),
        (other_kit.bundle("2.1.0", COMPATIBLE), 4, "not signed by a release key"),
        (kit.bundle("2.1.0", "tillbox-rpi4"), 1, "is for 'tillbox-rpi4' hardware"),
        (tmp_path / "nothere.raucb", 1, "cannot read the bundle"),
        (empty_stick, 1, "no update bundle (*.raucb)"),
    ]
    for source, code, what in cases:
        assert what in one_line_error(cli(sim_till, "install", str(source)), code), source
    assert update_events(sim_till) == []
    assert ((sim / "uboot.env").read_bytes(), (sim / "slot-B.img").read_bytes()) == before


def test_a_verity_bundle_damaged_inside_fails_its_install(sim_till, kit, tmp_path, flip):
    """A verity bundle's signature covers its manifest and the hash tree of its blocks;
    the blocks themselves are checked as the install reads them. So a damaged block is
    found once the install has started: it fails, is logged, and nothing boots from it."""
    damaged = flip(
        kit.bundle("2.1.0", COMPATIBLE, bundle_format="verity"), tmp_path / "d.raucb", 6000
    )
    err = one_line_error(cli(sim_till, "install", str(damaged)), 4)
    assert "changed or damaged after it was signed" in err
    (started, _), (failed, payload) = update_events(sim_till)
    assert (started, failed) == (ev.UPDATE_STARTED, ev.UPDATE_FAILED)
    assert "damaged" in payload["reason"]
    status = card(sim_till).status()
    assert status.primary == "A" and status.booted.bootname == "A"


def test_a_url_is_only_the_one_the_regions_notice_names(sim_till):
    result = cli(sim_till, "install", "https://region.example/tillbox-2.1.0.raucb")
    assert result.code == 1 and "not the bundle of the region's release notice" in result.err
    assert result.err.count("\n") == 1
    result = cli(sim_till, "install", "http://region.example/tillbox-2.1.0.raucb")
    assert result.code == 2 and "only downloaded over https://" in result.err
    assert result.err.count("\n") == 1
    assert update_events(sim_till) == []


def test_a_full_data_partition_is_refused_before_copying(sim_till, kit, monkeypatch):
    monkeypatch.setattr(service, "DATA_RESERVE", 1 << 60)  # more than any disk has free
    err = one_line_error(cli(sim_till, "install", str(kit.bundle("2.1.0", COMPATIBLE))), 3)
    assert "the data partition has" in err and "MiB free" in err
    assert update_events(sim_till) == []


def test_the_newest_bundle_for_this_till_is_taken_from_a_stick(sim_till, kit, other_kit, tmp_path):
    stick = tmp_path / "usb"
    stick.mkdir()
    for name, path in [
        ("a-2.1.0.raucb", kit.bundle("2.1.0", COMPATIBLE)),
        ("b-2.2.0.raucb", kit.bundle("2.2.0", COMPATIBLE)),
        ("c-9.0.0-other.raucb", kit.bundle("9.0.0", "tillbox-rpi4")),
        ("d-9.9.9-foreign.raucb", other_kit.bundle("9.9.9", COMPATIBLE)),
    ]:
        (stick / name).write_bytes(path.read_bytes())
    result = cli(sim_till, "install", str(stick), "--json")
    assert result.code == 0, result
    assert result.json()["to_version"] == "2.2.0"


# -- the boot-time check ----------------------------------------------------------------------
def installed_and_rebooted(ddir: DataDir, kit) -> None:
    assert cli(ddir, "install", str(kit.bundle("2.1.0", COMPATIBLE))).code == 0
    assert cli(ddir, "reboot").code == 0


def test_a_healthy_new_system_commits_itself(sim_till, kit):
    installed_and_rebooted(sim_till, kit)
    with Till.open(sim_till) as till:
        action = service.settle_boot(till, open_updater(till.config, sim_till), HEALTHY)
    assert action.kind == "commit"
    assert update_events(sim_till)[-1] == (
        ev.UPDATE_COMMITTED,
        update_events(sim_till)[-2][1] | {"decided_by": "health"},
    )
    assert card(sim_till).env()["BOOT_B_LEFT"] == "3"


def test_an_unhealthy_new_system_rolls_back_at_once(sim_till, kit):
    installed_and_rebooted(sim_till, kit)
    with Till.open(sim_till) as till:
        action = service.settle_boot(till, open_updater(till.config, sim_till), KIOSK_DIES)
    assert action.kind == "reject"
    kind, payload = update_events(sim_till)[-1]
    assert kind == ev.UPDATE_ROLLED_BACK
    assert payload["reason"] == "2.1.0 was not healthy: the kiosk did not draw its first frame"
    assert (payload["from_version"], payload["to_version"]) == ("0.1.0", "2.1.0")
    status = card(sim_till).status()  # the check restarted the till: into A
    assert status.booted.bootname == "A" and not status.other.good
    with Till.open(sim_till) as till:  # and the next boot's check has nothing left to do
        assert service.settle_boot(till, card(sim_till), HEALTHY).kind == "none"
    assert [t for t, _ in update_events(sim_till)].count(ev.UPDATE_ROLLED_BACK) == 1


def test_a_crashing_new_system_is_rolled_back_by_the_bootloader(sim_till, kit):
    installed_and_rebooted(sim_till, kit)  # 2.1.0 crashes before any check can run ...
    sim = card(sim_till)
    for _ in range(3):  # ... at every attempt: U-Boot gives up on it
        sim.reboot()
    assert sim.status().booted.bootname == "A"
    with Till.open(sim_till) as till:
        action = service.settle_boot(till, sim, HEALTHY)
    assert action.kind == "rolled_back"
    kind, payload = update_events(sim_till)[-1]
    assert kind == ev.UPDATE_ROLLED_BACK and payload["decided_by"] == "bootloader"
    assert "did not confirm it was healthy within its boot attempts" in payload["reason"]
    assert card(sim_till).env()["BOOT_A_LEFT"] == "3"  # the old system stays good


def test_a_power_cut_mid_install_is_discarded_at_the_next_boot(sim_till, kit):
    cli(sim_till, "status")
    folder = sim_folder(sim_till)
    (folder / "faults.json").write_text(json.dumps({"power_cut_after_bytes": 4096}))
    with Till.open(sim_till) as till, pytest.raises(PowerCut):
        service.install(till, open_updater(till.config, sim_till), kit.bundle("2.1.0", COMPATIBLE))
    (folder / "faults.json").unlink()
    sim = card(sim_till)
    assert sim.power_on() == "A"  # the power comes back
    assert cli(sim_till, "status", "--json").json()["pending"] == "interrupted"
    with Till.open(sim_till) as till:
        action = service.settle_boot(till, sim, HEALTHY)
    assert action.kind == "interrupted"
    kind, payload = update_events(sim_till)[-1]
    assert kind == ev.UPDATE_FAILED and "cut off" in payload["reason"]
    assert cli(sim_till, "install", str(kit.bundle("2.1.0", COMPATIBLE))).code == 0


def test_selftest_of_this_boot_reads_the_log(till):
    from appliance.log import boot_id

    assert service.selftest_this_boot(till, boot_id()) == ("missing", ())
    checks = [
        {"name": "disk", "result": "fail", "fatal": True, "value": "98 %", "fix": "free space"},
        {"name": "printer", "result": "fail", "fatal": False, "value": "off", "fix": "plug"},
    ]
    till.record_selftest({"verdict": "fail", "trigger": "boot", "checks": checks})
    assert service.selftest_this_boot(till, boot_id()) == ("fail", ("disk",))
    assert service.selftest_this_boot(till, "another-boot") == ("missing", ())


def test_stage_leaves_nothing_half_copied(sim_till, kit, monkeypatch):
    import os

    real_write = os.write

    def failing_write(fd, data):
        real_write(fd, bytes(data)[:100])  # a little lands, then the card is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", failing_write)
    bundle = kit.bundle("2.1.0", COMPATIBLE)
    with pytest.raises(Exception, match="No space left on device"):
        service.stage(bundle, sim_till, limit=1 << 30)
    assert list(Path(sim_till.root / "updates" / "incoming").iterdir()) == []


def test_the_kiosks_cart_holds_off_an_install(sim_till, kit):
    from ui.session import Session

    bundle = str(kit.bundle("2.1.0", COMPATIBLE))
    with Till.open(sim_till) as till:
        till.open_shift()
        session = Session(till)
        session.add("CAFE")
        assert "a sale is open" in one_line_error(cli(sim_till, "install", bundle), 1)
        session.pay("cash", 500)  # paid: the cart is empty again
        assert cli(sim_till, "install", bundle).code == 0
        session.add("CAFE")
        session.clear()
        assert cli(sim_till, "reboot").code == 0


def test_the_till_restarts_into_an_installed_update_at_shift_close(sim_till, kit):
    shift = ["shift", "open", "--data-dir", str(sim_till.root)]
    assert run_cli(*shift).code == 0
    assert cli(sim_till, "install", str(kit.bundle("2.1.0", COMPATIBLE))).code == 0
    assert card(sim_till).status().booted.bootname == "A"  # not during the shift
    result = run_cli("shift", "close", "--data-dir", str(sim_till.root))
    assert result.code == 0, result
    assert "restarting into update 2.1.0" in result.out
    assert card(sim_till).status().booted.bootname == "B"
    # nothing waits now: the next close is an ordinary one
    assert run_cli(*shift).code == 0
    result = run_cli("shift", "close", "--data-dir", str(sim_till.root))
    assert result.code == 0 and "restarting" not in result.out
    assert card(sim_till).status().booted.bootname == "B"


def test_a_close_with_no_update_waiting_never_opens_the_updater(sim_till):
    assert run_cli("shift", "open", "--data-dir", str(sim_till.root)).code == 0
    assert run_cli("shift", "close", "--data-dir", str(sim_till.root)).code == 0
    assert not sim_folder(sim_till).exists()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    source=st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        max_size=30,
    )
    | st.sampled_from([".", "/", "/dev/null", "/proc/self/status", "https://", "x.raucb"])
)
def test_any_source_gets_a_documented_status_and_one_line(sim_till, source):
    if source.startswith("-"):
        return  # an option, argparse's business
    result = cli(sim_till, "install", source)
    assert result.code in {1, 2, 3, 4}, result
    assert len(error_lines(result)) == 1, result
    [line] = error_lines(result)
    assert line.startswith("tillbox: error: ") and "internal error" not in line, result
    assert update_events(sim_till) == []


def test_a_huge_file_is_refused_unread(sim_till, tmp_path):
    from appliance.boundedio import UPDATE_BUNDLE_LIMIT

    huge = tmp_path / "huge.raucb"
    with huge.open("wb") as f:
        f.truncate(UPDATE_BUNDLE_LIMIT + 1)  # sparse: no disk space taken
    err = one_line_error(cli(sim_till, "install", str(huge)), 1)
    assert "larger than a release bundle can be (2048 MiB)" in err
    assert list((sim_till.root / "updates" / "incoming").iterdir()) == []


# -- `tillbox update boot-check`: what it reads of systemd --------------------------------------
def states(kiosk: str, sync: str, restarts: str = "0"):
    def state(unit: str) -> dict[str, str]:
        active = kiosk if unit == "tillbox-ui.service" else sync
        return {"ActiveState": active, "SubState": "", "NRestarts": restarts}

    return state


def test_boot_check_health_from_the_units(sim_till):
    from drivers.update_cli import gather_health

    with Till.open(sim_till) as till:
        health, seen = gather_health(till, 0, kiosk_required=True, state=states("active", "active"))
        assert (health.kiosk_ready, health.sync_started) == (True, True)
        assert seen["kiosk"] == "active"
        # the sync agent waits for the broker (activating) without crashing: started
        health, _ = gather_health(
            till, 0, kiosk_required=True, state=states("active", "activating")
        )
        assert health.sync_started
        # one that crashed and is waiting to restart is not
        crashed = states("active", "activating", restarts="2")
        health, _ = gather_health(till, 30, kiosk_required=True, state=crashed)  # no wait
        assert not health.sync_started
        health, _ = gather_health(till, 0, kiosk_required=True, state=states("failed", "active"))
        assert not health.kiosk_ready
        # a till without a display: the kiosk is not asked for, and the payload says so
        health, seen = gather_health(
            till, 0, kiosk_required=False, state=states("failed", "active")
        )
        assert health.kiosk_ready and seen["kiosk"] == "not checked (headless)"
        assert health.selftest == "missing"  # no self-test ran in this boot


def test_headless_only_from_the_exact_kernel_argument(tmp_path):
    from drivers.update_cli import headless

    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=PARTUUID=7111b0c5-03 ro rauc.slot=B tillbox.headless=1\n")
    assert headless(cmdline)
    cmdline.write_text("root=/dev/vda2 tillbox.headless=10 xtillbox.headless=1\n")
    assert not headless(cmdline)
    assert not headless(tmp_path / "missing")


def test_boot_check_commits_a_healthy_trial(sim_till, kit, monkeypatch):
    import drivers.update_cli as update_cli

    installed_and_rebooted(sim_till, kit)
    monkeypatch.setattr(update_cli, "unit_state", states("active", "active"))
    monkeypatch.setattr(update_cli, "headless", lambda: False)
    monkeypatch.setattr(
        service, "selftest_this_boot", lambda till, boot_id: ("pass", ())
    )  # the self-test's own tests cover it; here: the command's wiring
    result = cli(sim_till, "boot-check", "--wait", "0", "--no-reboot")
    assert result.code == 0, result
    assert result.out.startswith("boot check: commit (healthy"), result.out
    assert update_events(sim_till)[-1][0] == ev.UPDATE_COMMITTED
