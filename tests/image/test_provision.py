"""First-boot provisioning, run on the host against real folders (boot, data, system).

The partition growing and the boot-partition mount need a real card; the QEMU boot test
covers them. Everything else runs here with the real ``tillbox`` CLI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "image-build" / "tillbox.toml.example").read_text()
ZONEINFO = Path("/usr/share/zoneinfo")
SECRETS = ("change-me", "wifi-password")
REGION_KEY = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"

pytestmark = pytest.mark.skipif(
    not (ZONEINFO / "Europe/Berlin").is_file(), reason="tzdata missing on this host"
)


@pytest.fixture
def card(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "boot": tmp_path / "boot",
        "data": tmp_path / "data" / "till",
        "system": tmp_path / "data" / "system",
    }
    paths["boot"].mkdir()
    paths["data"].mkdir(parents=True)  # the image ships the empty folder
    return paths


def run(provision_module, card: dict[str, Path], tillbox: str) -> int:
    return provision_module.main(
        [
            "--boot",
            str(card["boot"]),
            "--data-dir",
            str(card["data"]),
            "--system-dir",
            str(card["system"]),
            "--zoneinfo",
            str(ZONEINFO),
            "--tillbox",
            tillbox,
        ]
    )


def tillbox_cli(tillbox: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tillbox, *args], capture_output=True, text=True, timeout=60)


def test_first_boot_applies_everything_and_removes_the_secrets(
    provision_module, card, host_tillbox, capsys
):
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)
    assert run(provision_module, card, host_tillbox) == 0
    out = capsys.readouterr().out
    assert "device stall-001 created" in out and "secrets removed" in out

    # The till exists, with its key born here (0600) and an intact log.
    key = card["data"] / "keys" / "device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    shown = tillbox_cli(host_tillbox, "device", "show", "--data-dir", str(card["data"]), "--json")
    assert '"device_id": "stall-001"' in shown.stdout
    assert (
        tillbox_cli(host_tillbox, "log", "verify", "--data-dir", str(card["data"])).returncode == 0
    )

    # The settings landed in the till's config.
    import tomllib

    config = tomllib.loads((card["data"] / "tillbox.toml").read_text())
    assert config["sync"]["broker"] == "mqtts://sync.region.example:8883"
    assert config["sync"]["username"] == "stall-001"
    # the password is in its own 0600 file, not in tillbox.toml (which two services read)
    assert "password" not in config["sync"]
    password_file = Path(config["sync"]["password_file"])
    assert password_file.read_text() == "change-me\n"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert config["sync"]["region_public_key"] == REGION_KEY
    assert config["shop"]["location"] == "Riverside Market, stand 12"
    assert config["location"] == {"latitude": 52.52, "longitude": 13.405}
    assert config["device"]["timezone"] == "Europe/Berlin"
    assert stat.S_IMODE((card["data"] / "tillbox.toml").stat().st_mode) == 0o660

    # System settings for the read-only root: time zone link, Wi-Fi without the passphrase.
    assert os.readlink(card["system"] / "localtime") == str(ZONEINFO / "Europe/Berlin")
    wifi = card["system"] / "wpa_supplicant-wlan0.conf"
    assert stat.S_IMODE(wifi.stat().st_mode) == 0o600
    psk = provision_module.wpa_psk("Market-WiFi", "wifi-password")
    assert wifi.read_bytes() == (
        b"ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\nupdate_config=0\ncountry=DE\n"
        b"network={\n\tssid=4d61726b65742d57694669\n\tscan_ssid=1\n\tkey_mgmt=WPA-PSK\n"
        b"\tpsk=" + psk.encode() + b"\n}\n"
    )
    assert not (card["system"] / "ssh" / "authorized_keys").exists()  # no key: SSH off

    # The boot partition keeps no secret: the file is gone, the record is redacted.
    assert not (card["boot"] / "tillbox.toml").exists()
    applied = (card["boot"] / "tillbox-applied.toml").read_text()
    assert 'id = "stall-001"' in applied and "removed from this card" in applied
    for path in card["boot"].iterdir():
        for secret in SECRETS:
            assert secret not in path.read_text(), path


def test_wpa_psk_matches_the_ieee_802_11i_test_vector(provision_module):
    # IEEE 802.11i-2004, H.4.1: passphrase "password", SSID "IEEE".
    assert provision_module.wpa_psk("IEEE", "password") == (
        "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    )


def test_later_boots_change_nothing(provision_module, card, host_tillbox, capsys):
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)
    assert run(provision_module, card, host_tillbox) == 0
    key = (card["data"] / "keys" / "device.key").read_bytes()
    config = (card["data"] / "tillbox.toml").read_bytes()
    capsys.readouterr()
    assert run(provision_module, card, host_tillbox) == 0
    assert "stall-001: nothing new to apply" in capsys.readouterr().out
    assert (card["data"] / "keys" / "device.key").read_bytes() == key
    assert (card["data"] / "tillbox.toml").read_bytes() == config


def test_reprovisioning_updates_settings_and_keeps_the_key(provision_module, card, host_tillbox):
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)
    assert run(provision_module, card, host_tillbox) == 0
    key = (card["data"] / "keys" / "device.key").read_bytes()
    moved = EXAMPLE.replace("Riverside Market, stand 12", "Harbour Fair, booth 3")
    key_line = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKz0bYp1d6zq8t+Vxw0d3kY6nN3m2fWQ7gk1z0s1Y2Zq t@o"
    )
    moved = moved.replace(
        '# [ssh]\n# authorized_keys = ["ssh-ed25519 AAAAC3Nza... technician@office"]',
        f'[ssh]\nauthorized_keys = ["{key_line}"]',
    )
    assert key_line in moved
    (card["boot"] / "tillbox.toml").write_text(moved)
    assert run(provision_module, card, host_tillbox) == 0
    import tomllib

    config = tomllib.loads((card["data"] / "tillbox.toml").read_text())
    assert config["shop"]["location"] == "Harbour Fair, booth 3"
    assert (card["data"] / "keys" / "device.key").read_bytes() == key
    authorized = card["system"] / "ssh" / "authorized_keys"
    assert authorized.read_text() == key_line + "\n"
    assert stat.S_IMODE(authorized.stat().st_mode) == 0o600
    # A third file without [ssh] switches SSH off again.
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)
    assert run(provision_module, card, host_tillbox) == 0
    assert not authorized.exists()


def test_a_card_keeps_its_device_id(provision_module, card, host_tillbox):
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)
    assert run(provision_module, card, host_tillbox) == 0
    key = (card["data"] / "keys" / "device.key").read_bytes()
    other = EXAMPLE.replace('id = "stall-001"', 'id = "stall-002"')
    (card["boot"] / "tillbox.toml").write_text(other)
    assert run(provision_module, card, host_tillbox) == 1
    error = (card["boot"] / "tillbox-error.txt").read_text()
    assert "already belongs to device 'stall-001'" in error and error.count("\n") == 1
    assert (card["boot"] / "tillbox.toml").read_text() == other  # left for the technician
    assert (card["data"] / "keys" / "device.key").read_bytes() == key


CA_PLACEHOLDER = (
    '# region_ca = """\n# -----BEGIN CERTIFICATE-----\n# ...\n# -----END CERTIFICATE-----\n# """'
)
RATE_PLACEHOLDER = "# [updates]\n# download_rate = 1000000"


def with_region_ca(text: str, pem: str) -> str:
    assert CA_PLACEHOLDER in text
    return text.replace(CA_PLACEHOLDER, f'region_ca = """\n{pem}"""')


@pytest.fixture
def region_ca(tmp_path: Path) -> str:
    from systest.https import make_cert

    cert, _key = make_cert(tmp_path / "pki", "region-ca")
    return cert.read_text()


def test_the_regions_ca_and_the_download_rate_are_applied(
    provision_module, card, host_tillbox, region_ca
):
    import ssl
    import tomllib

    from appliance.datadir import DataDir

    text = with_region_ca(EXAMPLE, region_ca).replace(
        RATE_PLACEHOLDER, "[updates]\ndownload_rate = 0"
    )
    (card["boot"] / "tillbox.toml").write_text(text)
    assert run(provision_module, card, host_tillbox) == 0
    ca = card["data"] / "region-ca.pem"
    assert ca.read_text() == region_ca.strip() + "\n"
    assert stat.S_IMODE(ca.stat().st_mode) == 0o640  # the tillbox group reads it
    assert not (card["data"] / ".region-ca.pem.tmp").exists()
    ssl.create_default_context(cafile=str(ca))  # a CA file the agent's TLS can load
    config = tomllib.loads((card["data"] / "tillbox.toml").read_text())
    assert config["sync"]["tls_ca"] == str(ca)  # the broker's TLS and the download's
    assert config["updates"]["download_rate"] == 0
    # the till's own loader takes it (its schema: [updates] belongs to the drivers)
    assert DataDir(card["data"]).load_config().section("updates")["download_rate"] == 0
    assert "BEGIN CERTIFICATE" in (card["boot"] / "tillbox-applied.toml").read_text()


def test_without_the_keys_the_till_keeps_its_defaults(provision_module, card, host_tillbox):
    from appliance.datadir import DataDir

    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)
    assert run(provision_module, card, host_tillbox) == 0
    config = DataDir(card["data"]).load_config()
    assert config.section("updates")["download_rate"] == 1_000_000
    assert config.section("sync")["tls_ca"] == "" and config.section("updates")["download_ca"] == ""
    assert not (card["data"] / "region-ca.pem").exists()


def test_with_a_plain_broker_the_ca_is_only_the_downloads(
    provision_module, card, host_tillbox, region_ca
):
    from appliance.datadir import DataDir

    text = with_region_ca(EXAMPLE, region_ca).replace(
        "mqtts://sync.region.example:8883", "mqtt://sync.region.example:1883"
    )
    (card["boot"] / "tillbox.toml").write_text(text)
    assert run(provision_module, card, host_tillbox) == 0
    config = DataDir(card["data"]).load_config()
    # a CA in [sync] tls_ca would make the agent speak TLS to a broker that does not
    assert config.section("sync")["tls_ca"] == ""
    assert config.section("updates")["download_ca"] == str(card["data"] / "region-ca.pem")


def test_a_later_file_without_the_ca_stops_trusting_it(
    provision_module, card, host_tillbox, region_ca
):
    from appliance.datadir import DataDir

    (card["boot"] / "tillbox.toml").write_text(with_region_ca(EXAMPLE, region_ca))
    assert run(provision_module, card, host_tillbox) == 0
    assert (card["data"] / "region-ca.pem").exists()
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)  # the region moved to a public CA
    assert run(provision_module, card, host_tillbox) == 0
    assert DataDir(card["data"]).load_config().section("sync")["tls_ca"] == ""
    assert not (card["data"] / "region-ca.pem").exists()


def test_the_ca_file_goes_to_the_kiosk_and_the_tillbox_group(
    provision_module, card, host_tillbox, region_ca, monkeypatch
):
    from types import SimpleNamespace

    (card["boot"] / "tillbox.toml").write_text(with_region_ca(EXAMPLE, region_ca))
    assert run(provision_module, card, host_tillbox) == 0
    users = {"kiosk": SimpleNamespace(pw_uid=1001, pw_gid=1001),
             "tillbox-sync": SimpleNamespace(pw_uid=1002, pw_gid=1002)}  # fmt: skip
    owners: dict[str, tuple[int, int]] = {}
    monkeypatch.setattr(provision_module.pwd, "getpwnam", users.__getitem__)
    monkeypatch.setattr(provision_module.os, "chown", lambda path, uid, gid, **_: owners.update(
        {Path(path).name: (uid, gid)}))  # fmt: skip
    provision_module.chown_data(provision_module.DataDir(card["data"]))
    assert owners["region-ca.pem"] == (1001, 1001)
    assert stat.S_IMODE((card["data"] / "region-ca.pem").stat().st_mode) == 0o640


BAD = {
    "no device id": (('id = "stall-001"\n', ""), "[device] id is missing"),
    "bad device id": (('id = "stall-001"', 'id = "stall 001"'), "[device] id must be"),
    "unknown zone": (
        ('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"'),
        "not a known time zone",
    ),
    "zone escape": (
        ('timezone = "Europe/Berlin"', 'timezone = "../../etc/passwd"'),
        "not a known time zone",
    ),
    "short psk": (('psk = "wifi-password"', 'psk = "short"'), "[wifi] psk must be 8-63"),
    "no country": (('country = "DE"\n', ""), "[wifi] country is missing"),
    "bad broker": (
        ('"mqtts://sync.region.example:8883"', '"sync.region.example"'),
        "[sync] broker must look like",
    ),
    "no region key": (
        ('region_public_key = "3d40', 'region_key = "3d40'),
        "[sync] region_key is not a known setting",
    ),
    "missing region key": (
        (
            f'region_public_key = "{REGION_KEY}"\n',
            "",
        ),
        "[sync] region_public_key is missing",
    ),
    "bad region key": (
        ('region_public_key = "3d40', 'region_public_key = "zz40'),
        "[sync] region_public_key must be",
    ),
    "password in broker URL": (
        ('"mqtts://sync.region.example:8883"', '"mqtts://stall-001:pw@sync.region.example:8883"'),
        "[sync] broker must look like mqtts://broker.example:8883 (no password in it)",
    ),
    "non-ASCII device id": (('id = "stall-001"', 'id = "kassé-001"'), "[device] id must be"),
    "non-ASCII tenant": (('tenant = "', 'tenant = "é'), "[device] tenant must be"),
    "wrong type": (("latitude = 52.5200", 'latitude = "52.52"'), "[location] latitude must be"),
    "websocket broker": (
        ('"mqtts://sync.region.example:8883"', '"wss://sync.region.example"'),
        "[sync] broker must look like",
    ),
    "unknown section": (("[shop]", "[shops]"), "unknown section [shops]"),
    "unknown key": (("permit = ", "permission = "), "[shop] permission is not a known"),
    "latitude": (("latitude = 52.5200", "latitude = 152.5"), "[location] latitude must be"),
    "not toml": (('name = "Riverside', "name = Riverside"), "not valid TOML"),
    "region ca not PEM": (
        (CA_PLACEHOLDER, 'region_ca = """\nnot a certificate\n"""'),
        "[sync] region_ca is not a readable PEM certificate",
    ),
    "region ca damaged": (
        (
            CA_PLACEHOLDER,
            'region_ca = """\n-----BEGIN CERTIFICATE-----\nMIIB!!\n-----END CERTIFICATE-----\n"""',
        ),
        "[sync] region_ca is not a readable PEM certificate",
    ),
    "region ca empty": ((CA_PLACEHOLDER, 'region_ca = ""'), "[sync] region_ca must be the"),
    "region ca a number": ((CA_PLACEHOLDER, "region_ca = 5"), "[sync] region_ca must be the"),
    "region ca with a private key": (
        (
            CA_PLACEHOLDER,
            'region_ca = """\n-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"""',
        ),
        "[sync] region_ca holds a private key",
    ),
    "region ca too big": (
        (CA_PLACEHOLDER, 'region_ca = """\n' + "A" * 70_000 + '\n"""'),
        "[sync] region_ca is larger than 64 KiB",
    ),
    "negative download rate": (
        (RATE_PLACEHOLDER, "[updates]\ndownload_rate = -1"),
        "[updates] download_rate must be",
    ),
    "download rate as text": (
        (RATE_PLACEHOLDER, '[updates]\ndownload_rate = "1 MB/s"'),
        "[updates] download_rate must be",
    ),
    "unprovisionable updates key": (
        (RATE_PLACEHOLDER, '[updates]\ndownload_ca = "/tmp/ca.pem"'),
        "[updates] download_ca is not a known setting",
    ),
    "bad ssh key": (
        (
            '# [ssh]\n# authorized_keys = ["ssh-ed25519 AAAAC3Nza... technician@office"]',
            '[ssh]\nauthorized_keys = ["my password is hunter2"]',
        ),
        "[ssh] authorized_keys entry",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_left_in_place_with_a_one_line_reason(
    provision_module, card, host_tillbox, case, capsys
):
    (old, new), expected = BAD[case]
    assert old in EXAMPLE
    text = EXAMPLE.replace(old, new, 1)
    (card["boot"] / "tillbox.toml").write_text(text)
    assert run(provision_module, card, host_tillbox) == 1
    error = (card["boot"] / "tillbox-error.txt").read_text()
    assert expected in error, error
    assert error.count("\n") == 1 and "fix" in error.lower()
    assert expected in capsys.readouterr().out  # console and journal too
    assert (card["boot"] / "tillbox.toml").read_text() == text  # nothing lost
    assert not (card["data"] / "tillbox.toml").exists()  # nothing half-applied
    assert not (card["data"] / "keys").exists()


def test_an_unprovisioned_card_says_what_to_do(provision_module, card, host_tillbox):
    assert run(provision_module, card, host_tillbox) == 1
    error = (card["boot"] / "tillbox-error.txt").read_text()
    assert "copy tillbox.toml.example to tillbox.toml" in error


def test_power_cut_before_the_secrets_go_is_finished_on_the_next_boot(
    provision_module, card, host_tillbox, monkeypatch
):
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)

    def power_cut(*args: object) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(provision_module, "remove_secrets", power_cut)
    with pytest.raises(KeyboardInterrupt):
        run(provision_module, card, host_tillbox)
    key = (card["data"] / "keys" / "device.key").read_bytes()
    assert (card["boot"] / "tillbox.toml").exists()  # secrets stay until applied
    monkeypatch.undo()
    assert run(provision_module, card, host_tillbox) == 0  # same id: finishes the job
    assert not (card["boot"] / "tillbox.toml").exists()
    assert (card["data"] / "keys" / "device.key").read_bytes() == key


def test_the_script_runs_as_a_program(card, host_tillbox):
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE)
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            str(REPO / "systemd" / "provision.py"),
            "--boot",
            str(card["boot"]),
            "--data-dir",
            str(card["data"]),
            "--system-dir",
            str(card["system"]),
            "--tillbox",
            host_tillbox,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tillbox-provision: device stall-001 created" in done.stdout


def test_an_oversized_provisioning_file_is_refused_unread(provision_module, card, host_tillbox):
    from appliance.boundedio import PROVISION_LIMIT

    padding = "# padding\n" * (PROVISION_LIMIT // 10 + 1)  # valid TOML, just too big
    (card["boot"] / "tillbox.toml").write_text(EXAMPLE + padding)
    assert run(provision_module, card, host_tillbox) == 1
    error = (card["boot"] / "tillbox-error.txt").read_text()
    assert "larger than 256 KiB" in error and error.count("\n") == 1, error
    assert not (card["data"] / "keys").exists()  # nothing applied
