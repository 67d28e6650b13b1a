"""The systemd units: they verify, a broken one does not, and the hardening is real."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze missing: `make test` installs systemd",
)

REPO = Path(__file__).resolve().parents[2]
APP_UNITS = [
    "tillbox-selftest.service",
    "tillbox-ui.service",
    "tillbox-sync.service",
    "tillbox-edge.service",
]


def unit_text(name: str) -> str:
    return (REPO / "systemd" / name).read_text()


def settings(name: str, section: str = "Service") -> dict[str, list[str]]:
    """Every Key=value of one section (keys may repeat)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in unit_text(name).splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory, helpers) -> Path:
    return helpers.make_unit_root(tmp_path_factory.mktemp("root"))


def test_install_map_names_real_files(helpers):
    for src, dest, mode in helpers.install_map():
        assert (REPO / src).is_file(), src
        assert dest.startswith("/"), dest
        assert re.fullmatch(r"0[0-7]{3}", mode), mode
    assert set(helpers.unit_names()) >= {"tillbox-provision.service", *APP_UNITS}


def test_every_unit_verifies(unit_root: Path, helpers):
    units = [u.replace("@.service", "@x.service") for u in helpers.unit_names()]
    code, output = helpers.verify(unit_root, [*units, "ssh.service"])
    assert (code, output) == (0, "")


BROKEN = {
    "unknown key": ("NoNewPrivileges=yes", "NoNewPrivilege=yes", "Unknown key"),
    "bad type": ("Type=notify", "Type=notfy", "Failed to parse service type"),
    "bad time": ("RestartSec=5", "RestartSec=fivesec", "Failed to parse sec value"),
    "missing binary": (
        "/opt/tillbox/venv/bin/tillbox sync",
        "/opt/tillbox/venv/bin/tilbox sync",
        "is not executable",
    ),
    "missing dependency": (
        "After=tillbox-provision.service network.target",
        "Requires=tillbox-provisioning.service",
        "not found",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_unit_fails_verification(tmp_path: Path, case: str, helpers):
    old, new, expected = BROKEN[case]
    text = unit_text("tillbox-sync.service")
    assert old in text
    dest = "/usr/lib/systemd/system/tillbox-sync.service"
    root = helpers.make_unit_root(tmp_path, {dest: text.replace(old, new, 1)})
    code, output = helpers.verify(root, ["tillbox-sync.service"])
    assert (code, output) != (0, "")
    assert expected in output


def test_a_helper_script_missing_from_the_image_fails(tmp_path: Path, helpers):
    # The provisioning unit calls /usr/lib/tillbox/provision, which comes from the
    # install map; a root without it (a build that forgot it) must not verify.
    root = helpers.make_unit_root(tmp_path)
    (root / "usr/lib/tillbox/provision").unlink()
    code, output = helpers.verify(root, ["tillbox-provision.service"])
    assert "is not executable" in output


@pytest.mark.parametrize("name", APP_UNITS)
def test_app_services_are_hardened(name: str):
    s = settings(name)
    assert s["User"][0] not in ("", "root")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert s.get(key) == [value], key
    families = " ".join(s["RestrictAddressFamilies"]).split()
    assert "AF_PACKET" not in families and families
    if name != "tillbox-edge.service":
        assert s["ReadWritePaths"] == ["/var/lib/tillbox"]


def test_device_access_is_through_groups_not_root():
    s = settings("tillbox-ui.service")
    groups = set(s["SupplementaryGroups"][0].split())
    assert {"video", "input", "dialout", "gpio", "lp"} <= groups
    assert "PrivateDevices" not in s  # it needs /dev/dri, /dev/input, printers
    assert settings("tillbox-sync.service")["PrivateDevices"] == ["yes"]
    assert settings("tillbox-sync.service")["User"] == ["tillbox-sync"]


def test_kiosk_runs_on_kmsdrm_with_watchdog_and_restart_limits():
    s = settings("tillbox-ui.service")
    unit = settings("tillbox-ui.service", "Unit")
    env = " ".join(s["Environment"])
    assert "KIVY_WINDOW=sdl2" in env and "SDL_VIDEODRIVER=kmsdrm" in env
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"]
    assert s["ExecStart"] == ["/opt/tillbox/venv/bin/tillbox kiosk --data-dir /var/lib/tillbox"]
    watchdog = int(s["WatchdogSec"][0].rstrip("s"))
    assert 0 < watchdog <= 60
    assert int(unit["StartLimitBurst"][0]) > 1 and int(unit["StartLimitIntervalSec"][0]) > 0
    assert "tillbox-selftest.service" in " ".join(unit["After"])


def test_selftest_runs_once_before_the_kiosk():
    s = settings("tillbox-selftest.service")
    unit = settings("tillbox-selftest.service", "Unit")
    assert s["Type"] == ["oneshot"]
    assert s["ExecStart"] == ["/opt/tillbox/venv/bin/tillbox selftest --data-dir /var/lib/tillbox"]
    assert "tillbox-ui.service" in unit["Before"]


@pytest.mark.parametrize("name", APP_UNITS)
def test_exposure_score_stays_low(unit_root: Path, name: str):
    # systemd's own hardening review: 0 is a sealed box, 10 is root with everything.
    done = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--root={unit_root}",
            "--threshold=30",
            "--no-pager",
            name,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 3.0, done.stdout
    assert done.returncode == 0


def test_hardware_watchdog_is_armed_below_the_pi_maximum():
    parser = configparser.ConfigParser()
    parser.read_string((REPO / "systemd/system.conf.d/tillbox-watchdog.conf").read_text())
    for key in ("RuntimeWatchdogSec", "RebootWatchdogSec"):
        value = parser["Manager"][key]
        seconds = int(value.removesuffix("s"))
        assert 0 < seconds < 15, f"{key}={value}: the BCM2835 watchdog stops at 15 s"


def test_sysusers_create_the_accounts_without_passwords(tmp_path: Path):
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers missing")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        shutil.copyfile(f"/etc/{name}", tmp_path / "etc" / name)
    for group in ("video", "render", "input", "dialout", "lp", "tty"):
        if f"\n{group}:" not in "\n" + (tmp_path / "etc/group").read_text():
            with open(tmp_path / "etc/group", "a") as fh:
                fh.write(f"{group}:x:{900 + len(group)}:\n")
    conf = tmp_path / "tillbox.conf"
    shutil.copyfile(REPO / "systemd/tillbox.sysusers", conf)
    done = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    groups = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/group").read_text().splitlines()
    }
    for user in ("kiosk", "tillbox-sync", "tillbox-edge"):
        assert passwd[user][6] == "/usr/sbin/nologin"
    tillbox_gid = groups["tillbox"][2]
    assert passwd["kiosk"][3] == tillbox_gid and passwd["tillbox-sync"][3] == tillbox_gid
    for group in ("video", "input", "dialout", "gpio", "lp"):
        assert "kiosk" in groups[group][3].split(","), group
    assert "tillbox-sync" not in groups["video"][3].split(",")
    shadow = {
        line.split(":")[0]: line.split(":")[1]
        for line in (tmp_path / "etc/shadow").read_text().splitlines()
    }
    for user in ("kiosk", "tillbox-sync", "tillbox-edge"):
        assert not shadow[user].startswith("$"), f"{user} has a password"


def test_the_kiosks_update_requests_start_roots_service():
    # The path the kiosk's RaucUpdater writes (drivers.update_requests) is the one the
    # path unit watches, on the image's data folder, and the image enables the unit.
    from drivers import update_requests

    s = settings("tillbox-update-request.path", "Path")
    assert s["PathExists"] == [f"/var/lib/tillbox/updates/{update_requests.REQUEST}"]
    assert s["Unit"] == ["tillbox-update-apply.service"]
    assert settings("tillbox-update-request.path", "Install")["WantedBy"] == ["paths.target"]
    enable = (REPO / "image-build/updates.sh").read_text().split("systemctl enable", 1)[1]
    assert "tillbox-update-request.path" in enable.split("\necho", 1)[0]
