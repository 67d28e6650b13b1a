"""The technician screen offers the system update on a USB stick, on the real kiosk
under Xvfb, tapped with X input events: a real bundle (signed by a test release key,
checked by real rauc), the simulated A/B card (``sim://``), the till's real log.

Refused while a sale is open (the core's rule, its message on the screen, nothing
recorded); installed once the cart is cleared: progress, the result line,
``update.started`` and ``update.installed`` in the log, slot B written and next. Then
the screen offers the restart into it: refused during a sale too, done once the cart is
cleared (the simulated card boots slot B).
"""

from __future__ import annotations

import pytest

from appliance import events as ev
from appliance.saleopen import SaleMark
from appliance.till import Till
from appliance.updates import open_updater
from systest.updates import ReleaseKit
from ui.testing import Kiosk, events, sim_updates_till

from .conftest import HubCalls

COMPATIBLE = "tillbox-test"


def sim_kiosk_till(tmp_path, kit: ReleaseKit):
    return sim_updates_till(tmp_path / "till", kit.cert, COMPATIBLE)


def booted(ddir) -> str:
    """The slot the simulated card runs."""
    with Till.open(ddir) as till:
        return open_updater(till.config, ddir).status().booted.bootname


def test_the_hub_offers_the_stick_and_reports_the_installs_progress(tmp_path, release_kit):
    """The kiosk's device hub (no window): the offer, then each progress step posted to
    the UI thread before the result."""
    kit = release_kit
    ddir = sim_kiosk_till(tmp_path, kit)
    stick = tmp_path / "usb"
    calls = HubCalls(ddir)
    hub, run, seen = calls.hub, calls.run, calls.seen
    try:
        kind, message = run(lambda done, failed: hub.update_offer(stick, done, failed))
        assert kind == "failed" and message.startswith("no update bundle (*.raucb) in ")
        (stick / "b.raucb").write_bytes(kit.bundle("2.1.0", COMPATIBLE).read_bytes())
        kind, offer = run(lambda done, failed: hub.update_offer(stick, done, failed))
        assert kind == "done" and offer.plan.to_version == "2.1.0"
        assert (offer.plan.from_version, offer.plan.to_slot) == ("0.1.0", "B")

        def install(done, failed):
            hub.install_update(
                stick / "b.raucb", lambda pct, what: seen.append(("progress", pct)), done, failed
            )

        kind, result = run(install)
        assert kind == "done" and result.plan.to_version == "2.1.0"
        steps = [pct for k, pct in seen if k == "progress"]
        assert steps and steps[-1] == 100 and steps == sorted(steps)
        kind, message = run(lambda done, failed: hub.update_offer(stick, done, failed))
        assert (kind, message) == (
            "failed",
            "2.1.0 is installed already; it starts when the till restarts (at shift close, "
            "or `tillbox update reboot`)",
        )
        assert run(hub.pending_restart) == ("done", "2.1.0")
        lock = SaleMark(ddir)
        lock.set(True)  # a sale on the kiosk's screen
        try:
            assert run(hub.restart_update) == (
                "failed",
                "a sale is open on the kiosk; finish or clear it, then restart",
            )
        finally:
            lock.close()
        assert booted(ddir) == "A"
        assert run(hub.restart_update) == ("done", None)
        assert booted(ddir) == "B"
        assert run(hub.pending_restart) == ("done", None)  # nothing waits any more
    finally:
        calls.close()


@pytest.mark.slow
def test_the_technician_screen_installs_the_update_on_the_usb_stick(xvfb, tmp_path, release_kit):
    kit = release_kit
    ddir = sim_kiosk_till(tmp_path, kit)
    stick = tmp_path / "usb"  # the kiosk's [ui] usb_path (make_till)
    bundle = kit.bundle("2.1.0", COMPATIBLE)
    (stick / "tillbox-2.1.0.raucb").write_bytes(bundle.read_bytes())

    k = Kiosk(xvfb, ddir, "800x480")
    try:
        k.to_sell()
        k.open_shift()
        k.tap("item-CAFE")  # a sale is open
        k.wait_text("total", "2.")

        k.to_settings()
        offer = k.wait_text("upd-message", "tillbox-2.1.0.raucb: 2.1.0 for tillbox-test", 30)
        assert "this till runs 0.1.0" in offer
        assert k.text("upd-offer") == "Install update 2.1.0"
        k.tap("upd-offer")
        k.wait_text("upd-message", "Install 2.1.0 into slot B? The till keeps running 0.1.0")
        k.tap("upd-confirm")
        refused = k.wait_text("upd-message", "Update not installed", 30)
        assert refused == (
            "Update not installed: a sale is open on the kiosk; finish or clear it, then "
            "install the update"
        )
        assert not [e for e in events(ddir) if e.type.startswith("update.")]

        k.tap("set-close")
        k.wait_screen("sell")
        k.tap("clear-cart")
        k.wait(lambda s: "0.00" in s["widgets"]["total"]["text"], what="the cart cleared")
        k.to_settings()
        k.wait_text("upd-message", "for tillbox-test", 30)
        k.screenshot("update-offer")
        k.tap("upd-offer")
        k.wait_text("upd-message", "into slot B?")
        k.screenshot("update-confirm")
        k.tap("upd-confirm")
        done = k.wait_text("upd-message", "Installed 2.1.0", 60)
        assert done == (
            "Installed 2.1.0 into slot B. The till runs 0.1.0 until it restarts at shift close."
        )
        k.screenshot("update-installed")
        assert k.text("upd-offer") == "Restart into 2.1.0 now"  # instead of an install

        # the restart: refused while a sale is open, as the install was
        k.tap("set-close")
        k.wait_screen("sell")
        k.tap("item-CAFE")
        k.wait_text("total", "2.")
        k.to_settings()
        k.wait(lambda s: s["widgets"].get("upd-offer", {}).get("text") == "Restart into 2.1.0 now",
               what="the restart offered", timeout=30)  # fmt: skip
        k.tap("upd-offer")
        asked = k.wait_text("upd-message", "Restart into 2.1.0 now?")
        k.screenshot("update-restart")
        assert asked == (
            "Restart into 2.1.0 now? The till is away for a minute or two while it restarts."
        )
        assert k.text("upd-confirm") == "Yes, restart"
        k.tap("upd-confirm")
        refused = k.wait_text("upd-message", "Not restarted", 30)
        assert (
            refused
            == "Not restarted: a sale is open on the kiosk; finish or clear it, then restart"
        )
        assert booted(ddir) == "A"

        k.tap("set-close")
        k.wait_screen("sell")
        k.tap("clear-cart")
        k.wait(lambda s: "0.00" in s["widgets"]["total"]["text"], what="the cart cleared")
        k.to_settings()
        k.wait(lambda s: s["widgets"].get("upd-offer", {}).get("text") == "Restart into 2.1.0 now",
               what="the restart offered", timeout=30)  # fmt: skip
        k.tap("upd-offer")
        k.wait_text("upd-message", "Restart into 2.1.0 now?")
        k.tap("upd-confirm")
        k.wait_text("upd-message", "Restarting into 2.1.0...", 30)
        k.wait(lambda _s: booted(ddir) == "B", what="the card restarted into slot B", timeout=30)
    finally:
        assert k.stop() == 0

    logged = [(e.type, e.payload) for e in events(ddir) if e.type.startswith("update.")]
    assert [t for t, _ in logged] == [ev.UPDATE_STARTED, ev.UPDATE_INSTALLED]
    installed = logged[-1][1]
    assert (installed["from_version"], installed["to_version"]) == ("0.1.0", "2.1.0")
    assert (installed["to_slot"], installed["by"]) == ("B", "technician")
    assert logged[0][1]["bundle"] == "tillbox-2.1.0.raucb"
    with Till.open(ddir) as till:
        status = open_updater(till.config, ddir).status()
    assert status.booted.version == "2.1.0" and status.primary == "B"
