"""The till's updater, from its config: RAUC on a real card, the simulator elsewhere.

``[updates] backend`` names it by URL, as ``[hardware]`` names devices: ``rauc://``
(RAUC's service and /etc/rauc/system.conf; the image sets this), ``rauc:///PATH`` (its
``system.conf`` elsewhere), or ``sim://`` (a simulated A/B card in ``DIR/sim-card/``,
for ``make run``, the tests and a technician's bench; it verifies bundles against
``[updates] keyring`` with the real ``rauc``).
"""

from __future__ import annotations

from pathlib import Path

from appliance import __version__
from appliance.config import Section, Setting
from appliance.datadir import Config, DataDir
from appliance.updates import Updater, UpdaterError

SECTIONS = {
    "updates": Section(
        {
            "backend": Setting("text", "sim://"),
            # The release certificates the simulator trusts (RAUC's own are named in
            # /etc/rauc/system.conf, where the image puts the same file).
            "keyring": Setting("text", "/etc/rauc/keyring.pem"),
            # The simulated card's hardware name (RAUC's comes from its system.conf).
            "compatible": Setting("text", "tillbox-sim", allow_empty=False),
            # The online delivery (drivers.update_fetch): the download's average rate in
            # bytes/s (0: unlimited), how often the sync agent looks at the region's
            # offer, and the CA its HTTPS is checked against ("": [sync] tls_ca).
            "download_rate": Setting("int", 1_000_000, min=0, max=10**10),
            "download_check_s": Setting("float", 60.0, min=0.1, max=86400),
            "download_ca": Setting("text", ""),
        }
    )
}


def sim_folder(data_dir: DataDir) -> Path:
    return data_dir.root / "sim-card"


def open_updater(config: Config, data_dir: DataDir) -> Updater:
    """The configured updater (nothing is started: each call asks it afresh)."""
    section = config.section("updates")
    url = section["backend"]
    if url.startswith("rauc://"):
        from drivers.rauc import RaucUpdater

        return RaucUpdater(url, data_dir=data_dir)
    if url == "sim://":
        from appliance.formats.release import check_compatible
        from drivers.update_sim import SimulatedUpdater

        keyring = section["keyring"]
        return SimulatedUpdater(
            sim_folder(data_dir),
            compatible=check_compatible(section["compatible"], "[updates] compatible"),
            keyring=Path(keyring) if keyring else None,
            factory_version=__version__,
        )
    raise UpdaterError(f"[updates] backend {url!r} is not rauc:// or sim://; fix tillbox.toml")
