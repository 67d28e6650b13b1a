"""Fixtures for the update tests: a release key, bundles, real RAUC on file slots.

The tools are Debian's (rauc 1.8, squashfs-tools, e2fsprogs, openssl, libubootenv-tool,
dbus; `make test` installs them). A test that needs one that is missing is skipped
with its name, never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.datadir import DataDir
from appliance.testing import demo_data_dir
from systest.updates import RIG_TOOLS, TOOLS, RaucRig, ReleaseKit, can_install, missing

COMPATIBLE = "tillbox-test"


def need(tools: tuple[str, ...]) -> None:
    gone = missing(tools)
    if gone:
        pytest.skip(f"needs {', '.join(gone)} (Debian: rauc squashfs-tools libubootenv-tool)")


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> ReleaseKit:
    """One release key for the session, and its bundles (built once each)."""
    need(TOOLS)
    return ReleaseKit(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="session")
def other_kit(tmp_path_factory: pytest.TempPathFactory) -> ReleaseKit:
    """Somebody else's release key (a keyring the tills do not hold)."""
    need(TOOLS)
    return ReleaseKit(tmp_path_factory.mktemp("other-release"), name="not our release")


@pytest.fixture
def rig(tmp_path: Path, kit: ReleaseKit) -> Iterator[RaucRig]:
    """Real `rauc service` on two file slots, booted from slot A."""
    need(RIG_TOOLS)
    rig = RaucRig(tmp_path / "rig", kit.cert, COMPATIBLE)
    try:
        rig.power_on()
        yield rig
    finally:
        rig.close()


@pytest.fixture
def installs() -> None:
    reason = can_install()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def sim_till(tmp_path: Path, kit: ReleaseKit) -> DataDir:
    """A demo till (no shift open) whose updater is the simulated card, trusting ``kit``."""
    ddir = demo_data_dir(tmp_path / "till")
    with open(ddir.config_path, "a", encoding="utf-8") as f:
        f.write(f'\n[updates]\nbackend = "sim://"\nkeyring = "{kit.cert}"\n')
        f.write(f'compatible = "{COMPATIBLE}"\n')
    return ddir


@pytest.fixture
def flip() -> Callable[[Path, Path, int], Path]:
    """A copy of a file with one byte changed at ``offset`` (counted from the end if < 0)."""

    def make(source: Path, dest: Path, offset: int) -> Path:
        data = bytearray(source.read_bytes())
        data[offset] ^= 0x01
        dest.write_bytes(bytes(data))
        return dest

    return make
