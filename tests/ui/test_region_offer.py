"""The technician screen shows the region's online offer and installs its download on
command, on the real kiosk under Xvfb, tapped with X input events: a real signed release
notice applied as the sync agent applies it, a real bundle (signed by a test release key,
checked by real rauc) where the agent leaves a whole download, the simulated A/B card
(``sim://``), the till's real log.

While the bundle downloads, the screen shows the offer's line and offers nothing; once
it is downloaded, "Install update X.Y.Z now": refused while a sale is open (the core's
rule, its message on the screen), installed by the technician once the cart is cleared.
"""

from __future__ import annotations

import shutil

import pytest
from nacl.signing import SigningKey

from appliance import events as ev
from appliance import region as till_region
from appliance.datadir import DataDir
from appliance.formats import region as fmt
from appliance.saleopen import SaleMark
from appliance.services.updates import downloaded_bundle
from appliance.till import Till
from appliance.updates import open_updater
from drivers import update_fetch
from edge.releases import notice as release_notice
from systest.updates import ReleaseKit
from ui.testing import Kiosk, events, sim_updates_till

from .conftest import HubCalls

COMPATIBLE = "tillbox-test"
REGION = SigningKey(bytes(range(96, 128)))
URL = "https://region.example/releases/tillbox-{version}.raucb"


def sim_kiosk_till(tmp_path, kit: ReleaseKit) -> DataDir:
    ddir = sim_updates_till(tmp_path / "till", kit.cert, COMPATIBLE)
    config = ddir.load_config()
    config.update("sync", region_public_key=REGION.verify_key.encode().hex())
    ddir.save_config(config)
    return ddir


def offer(ddir: DataDir, kit: ReleaseKit, version: str) -> None:
    """The region's signed release notice for ``version``, applied as the agent does."""
    bundle = kit.bundle(version, COMPATIBLE)
    with Till.open(ddir) as till:
        value = release_notice(bundle, kit.cert, URL.format(version=version))
        sealed = fmt.seal_region_data(REGION, till.tenant, value, 1, 1)
        applied = till_region.apply_signed(
            till, sealed, fmt.RELEASE, update_fetch.offer_checker(till)
        )
        assert applied.status == "applied", applied


def download(ddir: DataDir, kit: ReleaseKit, version: str) -> None:
    """The bundle where the agent leaves a whole download."""
    target = downloaded_bundle(ddir, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kit.bundle(version, COMPATIBLE), target)


def test_the_hub_reads_the_regions_offer_and_installs_its_download(tmp_path, release_kit):
    """The kiosk's device hub (no window): no offer, downloading (a line, no install),
    downloaded (an install), installed by the technician (the download removed)."""
    kit = release_kit
    ddir = sim_kiosk_till(tmp_path, kit)
    calls = HubCalls(ddir)
    hub, run = calls.hub, calls.run
    try:
        kind, found = run(hub.region_offer)
        assert kind == "done" and (found.line, found.offer) == ("", None)

        offer(ddir, kit, "2.1.0")
        kind, found = run(hub.region_offer)
        assert found.line.startswith("the region offers 2.1.0: downloading, 0 of ")
        assert "paused" not in found.line  # no sale open: the download runs
        assert found.offer is None
        mark = SaleMark(ddir)
        mark.set(True)  # a sale on the screen: the agent pauses, and the line says so
        kind, found = run(hub.region_offer)
        assert found.line.endswith(" bytes (paused while a sale is open)"), found.line
        mark.set(False)

        download(ddir, kit, "2.1.0")
        kind, found = run(hub.region_offer)
        assert found.line == "the region offers 2.1.0: downloaded; it installs between shifts"
        plan = found.offer.plan
        assert (plan.from_version, plan.to_version, plan.to_slot) == ("0.1.0", "2.1.0", "B")

        def install(done, failed):
            hub.install_update(
                downloaded_bundle(ddir, "2.1.0"), lambda pct, what: None, done, failed
            )

        kind, result = run(install)
        assert kind == "done" and result.plan.to_version == "2.1.0"
        assert not downloaded_bundle(ddir, "2.1.0").exists()  # its space back for the log
        kind, found = run(hub.region_offer)
        assert (found.line, found.offer) == ("the region offers 2.1.0: installed", None)
    finally:
        calls.close()


@pytest.mark.slow
def test_the_technician_screen_installs_the_regions_download_now(xvfb, tmp_path, release_kit):
    kit = release_kit
    ddir = sim_kiosk_till(tmp_path, kit)
    offer(ddir, kit, "2.1.0")

    k = Kiosk(xvfb, ddir, "800x480")
    try:
        k.to_sell()
        k.open_shift()

        # still downloading: the line, and nothing to install
        k.to_settings()
        k.wait_text("upd-message", "the region offers 2.1.0: downloading, 0 of ", 30)
        k.wait_text("upd-message", "No update to install: no update bundle (*.raucb) in ", 30)
        assert not k.widget("upd-offer")
        k.tap("set-close")
        k.wait_screen("sell")

        download(ddir, kit, "2.1.0")
        k.tap("item-CAFE")  # a sale is open
        k.wait_text("total", "2.")
        k.to_settings()
        k.wait_text("upd-message", "the region offers 2.1.0: downloaded; it installs between")
        k.wait(lambda s: s["widgets"].get("upd-offer"), 30, "the install offered")
        assert k.text("upd-offer") == "Install update 2.1.0 now"
        k.screenshot("region-offer")
        k.tap("upd-offer")
        k.wait_text("upd-message", "Install 2.1.0 into slot B? The till keeps running 0.1.0")
        k.tap("upd-confirm")
        refused = k.wait_text("upd-message", "Update not installed", 30)
        assert refused == (
            "Update not installed: a sale is open on the kiosk; finish or clear it, then "
            "install the update"
        )
        assert not [e for e in events(ddir) if e.type in (ev.UPDATE_STARTED, ev.UPDATE_INSTALLED)]

        k.tap("set-close")
        k.wait_screen("sell")
        k.tap("clear-cart")
        k.wait(lambda s: "0.00" in s["widgets"]["total"]["text"], what="the cart cleared")
        k.to_settings()  # a shift is still open: a technician may install all the same
        k.wait(lambda s: s["widgets"].get("upd-offer"), 30, "the install offered")
        k.tap("upd-offer")
        k.wait_text("upd-message", "into slot B?")
        k.tap("upd-confirm")
        done = k.wait_text("upd-message", "Installed 2.1.0", 60)
        assert done == (
            "Installed 2.1.0 into slot B. The till runs 0.1.0 until it restarts at shift close."
        )
        assert k.text("upd-offer") == "Restart into 2.1.0 now"  # no second install offered
    finally:
        assert k.stop() == 0

    logged = [(e.type, e.payload) for e in events(ddir) if e.type.startswith("update.")]
    assert [t for t, _ in logged] == [ev.UPDATE_OFFERED, ev.UPDATE_STARTED, ev.UPDATE_INSTALLED]
    started, installed = logged[1][1], logged[2][1]
    assert (started["by"], installed["by"]) == ("technician", "technician")
    assert (installed["from_version"], installed["to_version"]) == ("0.1.0", "2.1.0")
    assert started["bundle"] == "tillbox-2.1.0.raucb"  # the downloaded file
    assert not downloaded_bundle(ddir, "2.1.0").exists()
    with Till.open(ddir) as till:
        status = open_updater(till.config, ddir).status()
    assert status.other.version == "2.1.0" and status.primary == "B"


@pytest.mark.slow
def test_the_newer_of_the_sticks_bundle_and_the_regions_download_is_offered(
    xvfb, tmp_path, release_kit
):
    kit = release_kit
    ddir = sim_kiosk_till(tmp_path, kit)
    stick = tmp_path / "usb"  # the kiosk's [ui] usb_path (make_till)
    (stick / "tillbox-2.1.0.raucb").write_bytes(kit.bundle("2.1.0", COMPATIBLE).read_bytes())
    offer(ddir, kit, "2.2.0")
    download(ddir, kit, "2.2.0")

    k = Kiosk(xvfb, ddir, "800x480")
    try:
        k.to_sell()
        k.to_settings()
        shown = k.wait_text("upd-message", "tillbox-2.1.0.raucb: 2.1.0 for tillbox-test", 30)
        k.wait(lambda s: s["widgets"].get("upd-offer"), 30, "the install offered")
        shown = k.wait_text("upd-message", "the region offers 2.2.0: downloaded", 30)
        assert shown.splitlines() == [
            "the region offers 2.2.0: downloaded; it installs between shifts",
            "tillbox-2.1.0.raucb: 2.1.0 for tillbox-test; this till runs 0.1.0",
        ]
        assert k.text("upd-offer") == "Install update 2.2.0 now"
        k.tap("upd-offer")
        k.wait_text("upd-message", "Install 2.2.0 into slot B?")
    finally:
        assert k.stop() == 0
