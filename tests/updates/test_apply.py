"""``tillbox update apply``: root's pass that installs the region's downloaded offer
between shifts and restarts into an installed update at shift close.

The sync agent is not root and RAUC is root's only, so the agent only downloads; this
pass (tillbox-update-apply.timer, every minute) does the rest. The till is a demo till on
the simulated card with real signed bundles; the offer is a real signed release notice
applied as the agent applies it; the "download" is the bundle put where the agent puts
a finished one.
"""

from __future__ import annotations

import json
import shutil

import pytest
import tomli_w
from nacl.signing import SigningKey

from appliance import events as ev
from appliance import region as till_region
from appliance.datadir import DataDir
from appliance.formats import region as fmt
from appliance.saleopen import SaleMark
from appliance.testing import run_cli
from appliance.till import Till
from appliance.updates import SCHEDULE, TECHNICIAN, Activity, restart_due
from drivers import update_fetch
from drivers.updates import open_updater
from edge.releases import notice as release_notice

from .conftest import COMPATIBLE

REGION = SigningKey(bytes(range(64, 96)))
URL = "https://region.example/releases/tillbox-2.1.0.raucb"


@pytest.mark.parametrize(
    ("by", "shift_open", "sale_open", "closed_since", "due"),
    [
        (SCHEDULE, False, False, False, True),  # installed between shifts by the till
        (SCHEDULE, True, False, True, False),  # a cashier opened a shift meanwhile
        (SCHEDULE, False, True, True, False),  # a sale on the screen
        (TECHNICIAN, False, False, False, False),  # waits for a close, or the command
        (TECHNICIAN, False, False, True, True),  # the shift closed since the install
        (TECHNICIAN, True, False, True, False),
    ],
)
def test_when_the_till_restarts_by_itself(by, shift_open, sale_open, closed_since, due):
    assert restart_due(by, Activity(shift_open, sale_open), closed_since) is due


def apply(ddir: DataDir):
    return run_cli("update", "apply", "--data-dir", str(ddir.root), "--json")


def booted(ddir: DataDir) -> str:
    with Till.open(ddir) as till:
        return open_updater(till.config, ddir).status().booted.bootname


def update_types(ddir: DataDir) -> list[str]:
    with Till.open(ddir) as till:
        return [e.type for e in till.log.events() if e.type.startswith("update.")]


def offered(
    ddir: DataDir, kit, version: str = "2.1.0", *, downloaded: bool = True, seq: int = 1
) -> None:
    """The region's signed notice for ``version`` applied on the till, and (``downloaded``)
    its bundle where the agent leaves a whole download."""
    config = ddir.load_config()
    config.update("sync", region_public_key=REGION.verify_key.encode().hex())
    ddir.config_path.write_text(tomli_w.dumps(config.data))
    bundle = kit.bundle(version, COMPATIBLE)
    with Till.open(ddir) as till:
        value = release_notice(bundle, kit.cert, URL.replace("2.1.0", version))
        sealed = fmt.seal_region_data(REGION, till.tenant, value, seq, seq)
        applied = till_region.apply_signed(
            till, sealed, fmt.RELEASE, update_fetch.offer_checker(till)
        )
        assert applied.status == "applied", applied
        if downloaded:
            target = update_fetch.downloads_dir(till) / f"tillbox-{version}.raucb"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle, target)


def test_nothing_offered_nothing_done(sim_till):
    result = apply(sim_till)
    assert result.code == 0, result
    assert json.loads(result.out) == {"request": "", "install": "none", "restart": ""}
    assert update_types(sim_till) == []


def test_an_offer_not_downloaded_yet_is_left_to_the_agent(sim_till, kit):
    offered(sim_till, kit, downloaded=False)
    assert json.loads(apply(sim_till).out)["install"] == "none"
    assert update_types(sim_till) == ["update.offered"]


def test_the_download_installs_between_shifts_and_the_till_restarts_into_it(sim_till, kit):
    offered(sim_till, kit)
    with Till.open(sim_till) as till:
        till.open_shift()
    assert json.loads(apply(sim_till).out) == {"request": "", "install": "waiting", "restart": ""}
    assert ev.UPDATE_STARTED not in update_types(sim_till)
    with Till.open(sim_till) as till:
        till.close_shift()  # as the kiosk closes it: no CLI hook runs
    result = apply(sim_till)
    assert result.code == 0, result
    assert json.loads(result.out) == {
        "request": "",
        "install": "installed",
        "restart": "restarting into update 2.1.0",
    }
    with Till.open(sim_till) as till:
        started = [e.payload for e in till.log.events() if e.type == ev.UPDATE_STARTED]
    assert [p["by"] for p in started] == [SCHEDULE]
    assert booted(sim_till) == "B"
    # the bundle is gone from the downloads, and the next pass has nothing to do
    with Till.open(sim_till) as till:
        assert list(update_fetch.downloads_dir(till).iterdir()) == []
    assert json.loads(apply(sim_till).out) == {"request": "", "install": "none", "restart": ""}


def test_a_cashier_who_opens_a_shift_during_the_install_keeps_the_till(sim_till, kit):
    offered(sim_till, kit)
    with Till.open(sim_till) as till:
        update_fetch.install_offered(till, open_updater(till.config, sim_till))
        till.open_shift()
    assert json.loads(apply(sim_till).out) == {"request": "", "install": "none", "restart": ""}
    assert booted(sim_till) == "A"
    with Till.open(sim_till) as till:
        till.close_shift()
    assert json.loads(apply(sim_till).out)["restart"] == "restarting into update 2.1.0"
    assert booted(sim_till) == "B"


def test_a_sale_on_the_kiosk_holds_the_install_and_the_restart(sim_till, kit):
    offered(sim_till, kit)
    mark = SaleMark(sim_till)
    mark.set(True)
    assert json.loads(apply(sim_till).out) == {"request": "", "install": "waiting", "restart": ""}
    mark.set(False)
    assert json.loads(apply(sim_till).out)["install"] == "installed"


def test_a_technicians_install_waits_for_the_next_shift_close(sim_till, kit):
    bundle = str(kit.bundle("2.1.0", COMPATIBLE))
    assert run_cli("update", "install", bundle, "--data-dir", str(sim_till.root)).code == 0
    assert json.loads(apply(sim_till).out)["restart"] == ""  # no close since: not now
    assert booted(sim_till) == "A"
    with Till.open(sim_till) as till:
        till.open_shift()
    assert json.loads(apply(sim_till).out)["restart"] == ""
    with Till.open(sim_till) as till:
        till.close_shift()
    assert json.loads(apply(sim_till).out)["restart"] == "restarting into update 2.1.0"
    assert booted(sim_till) == "B"


def test_a_version_that_rolled_back_is_not_tried_again_by_itself(sim_till, kit):
    offered(sim_till, kit)
    with Till.open(sim_till) as till:
        till.record(
            ev.UPDATE_ROLLED_BACK,
            {"to_version": "2.1.0", "to_slot": "B", "reason": "the kiosk did not draw"},
        )
        assert update_fetch.step(till) == "done"  # the agent does not fetch it again
    assert json.loads(apply(sim_till).out)["install"] == "none"
    assert ev.UPDATE_STARTED not in update_types(sim_till)
    # a newer release is offered as usual
    offered(sim_till, kit, "2.2.0", seq=2)
    assert json.loads(apply(sim_till).out)["install"] == "installed"


def test_a_failed_install_is_one_line_and_recorded(sim_till, kit):
    offered(sim_till, kit)
    with Till.open(sim_till) as till:
        target = update_fetch.downloads_dir(till) / "tillbox-2.1.0.raucb"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # damaged
    result = apply(sim_till)
    assert result.code == 4, result
    [line] = result.err.strip().splitlines()
    assert line.startswith("tillbox: error: ") and "internal error" not in line
    assert booted(sim_till) == "A"


def test_an_offer_installed_once_is_not_fetched_again_after_a_newer_install(sim_till, kit):
    offered(sim_till, kit)
    assert json.loads(apply(sim_till).out)["install"] == "installed"
    # a technician installs a newer release by hand; the region's 2.1.0 is still in force
    newer = str(kit.bundle("2.2.0", COMPATIBLE))
    assert run_cli("update", "install", newer, "--data-dir", str(sim_till.root)).code == 0
    with Till.open(sim_till) as till:
        assert update_fetch.step(till) == "done"
        shutil.copyfile(
            kit.bundle("2.1.0", COMPATIBLE),
            update_fetch.downloads_dir(till) / "tillbox-2.1.0.raucb",
        )
    assert json.loads(apply(sim_till).out)["install"] == "none"
    assert update_types(sim_till).count(ev.UPDATE_STARTED) == 2


def test_the_pass_serves_the_kiosks_handed_over_restart_first(sim_till, kit):
    import threading

    from drivers import update_requests

    bundle = str(kit.bundle("2.1.0", COMPATIBLE))
    assert run_cli("update", "install", bundle, "--data-dir", str(sim_till.root)).code == 0
    asked: list[BaseException | None] = []

    def kiosk() -> None:  # the technician's "restart now", as the kiosk hands it to root
        try:
            update_requests.ask(sim_till, "reboot", None, None, timeout=30)
            asked.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            asked.append(exc)

    thread = threading.Thread(target=kiosk)
    thread.start()
    request = sim_till.root / "updates" / "request.json"
    for _ in range(200):
        if request.exists():
            break
        threading.Event().wait(0.05)
    result = apply(sim_till)
    thread.join(30)
    assert result.code == 0, result
    out = json.loads(result.out)
    assert out["request"] and out["restart"] == "", out  # restarted by the request itself
    assert asked == [None]
    assert booted(sim_till) == "B"


def test_an_updater_that_cannot_answer_does_not_ignore_the_release_for_good(sim_till, kit):
    from appliance.errors import TillError
    from appliance.updates import UpdaterError

    class Silent:  # RAUC's service not up yet, or the agent's sandbox killing rauc
        def status(self):
            raise UpdaterError("rauc status failed (rauc exited with status -31)")

    config = sim_till.load_config()
    config.update("sync", region_public_key=REGION.verify_key.encode().hex())
    sim_till.config_path.write_text(tomli_w.dumps(config.data))
    value = release_notice(kit.bundle("2.1.0", COMPATIBLE), kit.cert, URL)
    with Till.open(sim_till) as till:
        sealed = fmt.seal_region_data(REGION, till.tenant, value, 1, 1)
        with pytest.raises(TillError, match="taken again at the next connect"):
            till_region.apply_signed(
                till, sealed, fmt.RELEASE, update_fetch.offer_checker(till, Silent())
            )
    assert update_types(sim_till) == []  # nothing recorded: the next connect offers it
    offered(sim_till, kit)  # the updater answers now
    assert update_types(sim_till) == ["update.offered"]
