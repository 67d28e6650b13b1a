"""The update rules (appliance.updates), pure: when, what, commit only when healthy,
what a boot after an install means; and the kiosk's sale-open lock across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from appliance import events as ev
from appliance import saleopen
from appliance.errors import RuleViolation, TillError
from appliance.formats.release import Version, parse_version
from appliance.updates import (
    SCHEDULE,
    TECHNICIAN,
    Activity,
    BundleInfo,
    Health,
    LastUpdate,
    SlotState,
    UpdaterStatus,
    after_boot,
    check_install_time,
    check_reboot_time,
    health_problems,
    plan_install,
)

IDLE = Activity(shift_open=False, sale_open=False)
SHIFT = Activity(shift_open=True, sale_open=False)
SELLING = Activity(shift_open=True, sale_open=True)
HEALTHY = Health(selftest="pass", kiosk_ready=True, sync_started=True)


def status(booted="A", version="2.0.0", other_version=None, primary=None) -> UpdaterStatus:
    other = "B" if booted == "A" else "A"
    return UpdaterStatus(
        compatible="tillbox-rpi4",
        booted=SlotState(booted, f"rootfs.{'AB'.index(booted)}", "booted", True, version),
        other=SlotState(other, f"rootfs.{'AB'.index(other)}", "inactive", True, other_version),
        primary=primary or booted,
    )


def bundle(version="2.1.0", compatible="tillbox-rpi4") -> BundleInfo:
    return BundleInfo(f"/media/usb/tillbox-{version}.raucb", compatible, version, "CN=release")


@pytest.mark.parametrize(
    "activity, by, refused",
    [
        (IDLE, SCHEDULE, None),
        (IDLE, TECHNICIAN, None),
        (SHIFT, SCHEDULE, "a shift is open"),
        (SHIFT, TECHNICIAN, None),
        (SELLING, TECHNICIAN, "a sale is open"),
        (SELLING, SCHEDULE, "a sale is open"),
    ],
)
def test_install_only_between_shifts_or_on_command_never_during_a_sale(activity, by, refused):
    for check in (check_install_time, check_reboot_time):
        if refused:
            with pytest.raises(RuleViolation, match=refused):
                check(activity, by)
        else:
            check(activity, by)


def test_plan_an_upgrade():
    plan = plan_install(status(), bundle())
    assert (plan.from_version, plan.to_version, plan.from_slot, plan.to_slot) == (
        "2.0.0",
        "2.1.0",
        "A",
        "B",
    )
    assert not plan.downgrade and not plan.forced
    assert plan.payload()["signer"] == "CN=release"


def test_other_hardware_is_refused_even_when_forced():
    with pytest.raises(RuleViolation, match="'tillbox-qemu-arm64' hardware"):
        plan_install(status(), bundle(compatible="tillbox-qemu-arm64"), force=True)


@pytest.mark.parametrize("version, what", [("1.9.9", "older than"), ("2.0.0", "already runs")])
def test_a_downgrade_needs_a_technician_to_force_it(version, what):
    with pytest.raises(RuleViolation, match=what) as err:
        plan_install(status(), bundle(version))
    assert "--force-downgrade" in str(err.value)
    plan = plan_install(status(), bundle(version), force=True)
    assert plan.downgrade and plan.forced
    with pytest.raises(RuleViolation, match="only a technician"):
        plan_install(status(), bundle(version), by=SCHEDULE, force=True)


def test_versions_compare_as_numbers():
    assert parse_version("2.10.0") > parse_version("2.9.9") == Version(2, 9, 9)
    for bad in ("2.1", "v2.1.0", "2.1.0-rc1", "02.1.0", "", None, 2):
        with pytest.raises(TillError):
            parse_version(bad)
    # a bundle whose version breaks the rule is refused, whatever runs
    with pytest.raises(TillError):
        plan_install(status(), bundle("2.1"))


def test_a_development_build_takes_any_release():
    plan = plan_install(status(version="dev"), bundle("0.0.1"))
    assert not plan.downgrade


def test_healthy_means_all_three():
    assert health_problems(HEALTHY) == []
    sick = Health(selftest="fail", kiosk_ready=False, sync_started=False, failed=("disk",))
    assert health_problems(sick) == [
        "the self-test failed: disk",
        "the kiosk did not draw its first frame",
        "the sync agent did not start",
    ]
    assert health_problems(Health("missing", True, True)) == [
        "the self-test did not run in this boot"
    ]


def installed(type_=ev.UPDATE_INSTALLED) -> LastUpdate:
    return LastUpdate(7, type_, {"from_version": "2.0.0", "to_version": "2.1.0",
                                 "from_slot": "A", "to_slot": "B"})  # fmt: skip


def test_after_boot_nothing_pending():
    assert after_boot(None, status()).kind == "none"
    for done in (ev.UPDATE_COMMITTED, ev.UPDATE_ROLLED_BACK, ev.UPDATE_FAILED):
        action = after_boot(installed(done), status(), HEALTHY)
        assert action.kind == "none" and action.mark_good  # a healthy boot stays good


def test_after_boot_awaiting_the_reboot():
    assert after_boot(installed(), status(primary="B"), HEALTHY).kind == "awaiting_reboot"


def test_after_boot_a_trial_commits_only_when_healthy():
    trial = status(booted="B", version="2.1.0", other_version="2.0.0")
    assert after_boot(installed(), trial).kind == "trial"
    assert after_boot(installed(), trial, HEALTHY).kind == "commit"
    sick = Health(selftest="pass", kiosk_ready=False, sync_started=True)
    action = after_boot(installed(), trial, sick)
    assert action.kind == "reject" and not action.mark_good
    assert "2.1.0 was not healthy: the kiosk did not draw its first frame" == action.reason


def test_after_boot_the_bootloader_fell_back():
    action = after_boot(installed(), status(booted="A", primary="A"), HEALTHY)
    assert action.kind == "rolled_back" and action.mark_good
    assert "2.1.0 in slot B did not confirm it was healthy" in action.reason
    assert "started slot A (2.0.0) again" in action.reason


def test_after_boot_an_install_cut_off():
    started = installed(ev.UPDATE_STARTED)
    assert after_boot(started, status(), install_running=True).kind == "in_progress"
    action = after_boot(started, status(), HEALTHY)
    assert action.kind == "interrupted" and "partial install is discarded" in action.reason


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from appliance.datadir import DataDir
    from appliance.saleopen import SaleMark
    mark = SaleMark(DataDir(Path(sys.argv[1])))
    mark.set(True)
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_a_sale_open_in_another_process_is_seen_and_ends_with_it(data_dir):
    assert not saleopen.is_open(data_dir)
    kiosk = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert kiosk.stdout.readline().strip() == "held"
        assert saleopen.is_open(data_dir)
        assert saleopen.is_open(data_dir)  # asking does not take it away
    finally:
        kiosk.kill()  # a crash: no clean-up runs
        kiosk.wait()
    assert not saleopen.is_open(data_dir)


def test_the_kiosk_side_sets_and_clears(data_dir):
    mark = saleopen.SaleMark(data_dir)
    mark.set(True)
    mark.set(True)  # idempotent
    assert mark.held and saleopen.is_open(data_dir)
    mark.set(False)
    assert not mark.held and not saleopen.is_open(data_dir)
