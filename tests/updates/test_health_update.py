"""The update part of the till's health message (TBHL ``update``), read by the sync
agent's reader from the log that real installs, checks and roll backs wrote (real
bundles, real rauc checks, the simulated card), and sealed as the agent sends it."""

from __future__ import annotations

from nacl.signing import SigningKey

from appliance import __version__
from appliance.datadir import DataDir
from appliance.formats import telemetry
from appliance.services import updates as service
from appliance.till import Till
from appliance.updates import Health
from drivers.updates import open_updater
from sync_agent import health as health_reader
from sync_agent.reader import LogReader

from .conftest import COMPATIBLE
from .test_update_cli import HEALTHY, cli, installed_and_rebooted

KIOSK_DIES = Health(selftest="pass", kiosk_ready=False, sync_started=True)


def reported(ddir: DataDir) -> telemetry.Update:
    """The update object of the health message the agent would send now (sealed and
    opened again, as the edge reads it)."""
    reader = LogReader(ddir.log_path)
    try:
        config = ddir.load_config()
        built = health_reader.HealthReader(reader.log, config, config.device_id, "demo").health(
            tail=reader.tail()[0], acked_seq=0, drain_estimate_s=None, now_ms=1
        )
    finally:
        reader.close()
    key = SigningKey(bytes(32))
    opened = telemetry.open_health(telemetry.seal_health(key, built), key.verify_key)
    assert opened.update is not None
    return opened.update


def test_a_till_never_updated_reports_none(sim_till):
    update = reported(sim_till)
    assert (update.state, update.running, update.slot, update.version) == (
        "none",
        __version__,
        None,
        None,
    )


def test_installed_then_rolled_back_with_the_reason(sim_till, kit):
    installed_and_rebooted(sim_till, kit)
    update = reported(sim_till)  # the reboot of the simulated card is not a new boot
    assert (update.state, update.running, update.slot, update.version) == (
        "awaiting_reboot",
        "0.1.0",
        "A",
        "2.1.0",
    )
    with Till.open(sim_till) as till:
        service.settle_boot(till, open_updater(till.config, sim_till), KIOSK_DIES)
    update = reported(sim_till)
    assert (update.state, update.running, update.slot, update.version) == (
        "rolled_back",
        "0.1.0",
        "A",
        "2.1.0",
    )
    assert update.reason == "2.1.0 was not healthy: the kiosk did not draw its first frame"
    assert update.seq is not None and update.at_ms


def test_after_the_restart_a_trial_then_committed(sim_till, kit, monkeypatch):
    assert cli(sim_till, "install", str(kit.bundle("2.1.0", COMPATIBLE))).code == 0
    # the next boot of the till: the kernel gives it a new boot id
    monkeypatch.setattr(health_reader, "current_boot_id", lambda: "the-next-boot")
    update = reported(sim_till)
    assert (update.state, update.running, update.slot) == ("trial", "2.1.0", "B")
    assert cli(sim_till, "reboot").code == 0
    with Till.open(sim_till) as till:
        service.settle_boot(till, open_updater(till.config, sim_till), HEALTHY)
    update = reported(sim_till)
    assert (update.state, update.running, update.slot, update.reason) == (
        "committed",
        "2.1.0",
        "B",
        None,
    )
