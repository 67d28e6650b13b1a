#!/opt/tillbox/venv/bin/python3 -I
"""First-boot provisioning of a tillbox kiosk from ``tillbox.toml`` on the boot partition.

Installed as ``/usr/lib/tillbox/provision`` and run by ``tillbox-provision.service`` on
every boot. Each step checks the state it wants and acts only when needed, so a power
cut at any moment leaves something the next boot finishes:

1. grow the data partition to the end of the card (``--grow-data``);
2. read and check ``BOOT/tillbox.toml`` (absent: nothing to apply);
3. create the till on the data partition with ``tillbox init`` (the device key is born
   here, on the device, never in the image);
4. write broker, the region's CA (``region-ca.pem``), the update download rate, shop,
   event location and time zone into the till's config, and the Wi-Fi, SSH and time
   zone settings under ``/data/system`` (root-only; the root file system is read-only
   and its /etc points there);
5. hand the data folder to the kiosk and sync users (``--chown``);
6. only then remove the file with its secrets from the boot partition, leaving
   ``tillbox-applied.toml`` (secrets redacted) so the technician can see what was applied.

A bad file is left in place, the reason goes to ``BOOT/tillbox-error.txt``, the console
and the journal, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import re
import shutil
import ssl
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.boundedio import PROVISION_LIMIT, read_bounded
from appliance.config import schema as config_schema
from appliance.datadir import Config, DataDir
from appliance.errors import TillError
from appliance.formats.brokerurl import BrokerURL
from appliance.fsutil import atomic_write, fsync_dir

PROVISION_FILE = "tillbox.toml"
APPLIED_FILE = "tillbox-applied.toml"
ERROR_FILE = "tillbox-error.txt"
EXAMPLE_FILE = "tillbox.toml.example"
REDACTED = "(stored on the device, removed from this card)"
SECRET_KEYS = {("sync", "password"), ("wifi", "psk")}
COMMAND_TIMEOUT_S = 120
REGION_CA_FILE = "region-ca.pem"  # in the data folder: the sync agent and the kiosk read it
REGION_CA_LIMIT = 64 * 1024  # a CA certificate is 1-2 KiB; a chain of a few fits easily

_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_SSH_KEY_RE = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|"
    r"sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) "
    r"[A-Za-z0-9+/]+=*( [^\n\r]*)?$"
)
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_KNOWN = {
    "device": {"id", "tenant", "timezone"},
    "sync": {"broker", "username", "password", "region_public_key", "region_ca"},
    "wifi": {"ssid", "psk", "country"},
    "shop": {"name", "location", "permit"},
    "location": {"latitude", "longitude"},
    "ssh": {"authorized_keys"},
    "updates": {"download_rate"},
}


class ProvisionError(TillError):
    """The provisioning file is wrong; the message says which line to fix."""


@dataclass
class Provisioning:
    """A checked provisioning file."""

    device_id: str
    tenant: str = "demo"
    timezone: str | None = None
    broker: str | None = None
    username: str | None = None
    password: str | None = None
    region_public_key: str | None = None
    region_ca: str | None = None  # PEM certificates, checked
    download_rate: int | None = None  # bytes/s, 0: unlimited
    wifi_ssid: str | None = None
    wifi_psk: str | None = None
    wifi_country: str | None = None
    shop: dict[str, str] = field(default_factory=dict)
    location: dict[str, float] = field(default_factory=dict)
    ssh_keys: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def _fail(section: str, key: str, problem: str) -> ProvisionError:
    return ProvisionError(
        f"tillbox.toml: [{section}] {key} {problem}; fix it on the card's "
        "boot partition and restart the kiosk"
    )


def _text(data: dict, section: str, key: str, *, required: bool = False) -> str | None:
    value = data.get(section, {}).get(key)
    if value is None:
        if required:
            raise _fail(section, key, "is missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(section, key, "must be a non-empty text in quotes")
    if any(c in value for c in "\r\n\0"):
        raise _fail(section, key, "must be a single line")
    return value.strip()


def _pem_certificates(data: dict, section: str, key: str) -> str | None:
    """PEM CA certificates (one or more), as ``ssl`` would load them; None when absent."""
    value = data.get(section, {}).get(key)
    if value is None:
        return None
    pem = '"""-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----"""'
    if not isinstance(value, str) or not value.strip():
        raise _fail(section, key, f"must be the region's CA certificate in triple quotes: {pem}")
    if len(value.encode()) > REGION_CA_LIMIT:
        raise _fail(
            section, key, f"is larger than {REGION_CA_LIMIT // 1024} KiB (paste only the CA)"
        )
    if "PRIVATE KEY" in value:  # a key must not go to tillbox-applied.toml on the card
        raise _fail(section, key, "holds a private key; paste only the region's CA certificate")
    try:
        ssl.create_default_context(cadata=value.strip())
    except (ssl.SSLError, ValueError, TypeError):  # no certificate, a damaged one, not ASCII
        raise _fail(
            section, key, f"is not a readable PEM certificate; paste the whole file: {pem}"
        ) from None
    return value.strip() + "\n"


def parse(text: str, zoneinfo: Path = Path("/usr/share/zoneinfo")) -> Provisioning:
    """Check a provisioning file; ProvisionError (one line, what to fix) when it is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(
            f"tillbox.toml is not valid TOML ({exc}); fix it on the card's "
            "boot partition (compare with tillbox.toml.example)"
        ) from None
    for section, values in data.items():
        if section not in _KNOWN or not isinstance(values, dict):
            raise ProvisionError(
                f"tillbox.toml: unknown section [{section}]; fix it on the "
                "card's boot partition (the sections are "
                f"{', '.join(f'[{s}]' for s in _KNOWN)})"
            )
        unknown = sorted(set(values) - _KNOWN[section])
        if unknown:
            raise _fail(
                section,
                unknown[0],
                f"is not a known setting (known: {', '.join(sorted(_KNOWN[section]))})",
            )
        # The keys that go into the till's own tillbox.toml obey its schema (types,
        # ranges, the identifier rule, the broker URL parser) already here.
        till_section = config_schema().get(section)
        for key, value in values.items():
            if till_section is not None and key in till_section.settings:
                try:
                    till_section.settings[key].check(value)
                except ValueError as exc:
                    raise _fail(section, key, str(exc)) from None
    device_id = _text(data, "device", "id", required=True)
    assert device_id is not None
    prov = Provisioning(device_id=device_id, raw=data)
    prov.tenant = _text(data, "device", "tenant") or "demo"
    prov.timezone = _text(data, "device", "timezone")
    if prov.timezone is not None:
        tz = prov.timezone
        if ".." in tz.split("/") or tz.startswith("/") or not (zoneinfo / tz).is_file():
            raise _fail(
                "device",
                "timezone",
                f'{tz!r} is not a known time zone (e.g. "Europe/Berlin", "UTC")',
            )
    prov.broker = _text(data, "sync", "broker")
    if prov.broker is not None:
        prov.region_public_key = _text(data, "sync", "region_public_key", required=True)
        if not _HEX64_RE.match(prov.region_public_key or ""):
            raise _fail(
                "sync",
                "region_public_key",
                "must be the region's public key: 64 hex digits (from `tillbox edge keygen`)",
            )
    prov.region_ca = _pem_certificates(data, "sync", "region_ca")
    rate = data.get("updates", {}).get("download_rate")
    if rate is not None:  # its type and range were checked against the till's schema above
        prov.download_rate = int(rate)
    prov.username = _text(data, "sync", "username")
    prov.password = _text(data, "sync", "password")
    if prov.password is not None and prov.username is None:
        raise _fail("sync", "username", "is missing (a password needs a username)")
    if "wifi" in data:
        prov.wifi_ssid = _text(data, "wifi", "ssid", required=True)
        prov.wifi_psk = _text(data, "wifi", "psk", required=True)
        prov.wifi_country = _text(data, "wifi", "country", required=True)
        assert prov.wifi_ssid is not None and prov.wifi_psk is not None
        if len(prov.wifi_ssid.encode()) > 32:
            raise _fail("wifi", "ssid", "is longer than 32 bytes")
        if not 8 <= len(prov.wifi_psk) <= 63 or not prov.wifi_psk.isascii():
            raise _fail("wifi", "psk", "must be 8-63 plain (ASCII) characters")
        if not _COUNTRY_RE.match(prov.wifi_country or ""):
            raise _fail("wifi", "country", 'must be a two-letter country code like "DE"')
    for key in ("name", "location", "permit"):
        value = _text(data, "shop", key)
        if value is not None:
            prov.shop[key] = value
    for key in ("latitude", "longitude"):
        value = data.get("location", {}).get(key)
        if value is None:
            continue
        limit = 90 if key == "latitude" else 180
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not -limit <= value <= limit
        ):
            raise _fail("location", key, f"must be a number between -{limit} and {limit}")
        prov.location[key] = float(value)
    keys = data.get("ssh", {}).get("authorized_keys", [])
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _fail("ssh", "authorized_keys", "must be a list of public keys in quotes")
    for key in keys:
        if not _SSH_KEY_RE.match(key.strip()):
            raise _fail(
                "ssh",
                "authorized_keys",
                f"entry {key[:24]!r}... is not an OpenSSH "
                "public key (one line, e.g. ssh-ed25519 AAAA...)",
            )
    prov.ssh_keys = [k.strip() for k in keys]
    return prov


def wpa_psk(ssid: str, passphrase: str) -> str:
    """The WPA2 pre-shared key (what ``wpa_passphrase`` prints): no plain passphrase on disk."""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def wpa_supplicant_conf(prov: Provisioning) -> bytes:
    """wpa_supplicant config for wlan0; the SSID in hex so no quoting can break it."""
    assert prov.wifi_ssid is not None and prov.wifi_psk is not None
    return (
        f"ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\n"
        f"update_config=0\n"
        f"country={prov.wifi_country}\n"
        f"network={{\n"
        f"\tssid={prov.wifi_ssid.encode().hex()}\n"
        f"\tscan_ssid=1\n"
        f"\tkey_mgmt=WPA-PSK\n"
        f"\tpsk={wpa_psk(prov.wifi_ssid, prov.wifi_psk)}\n"
        f"}}\n"
    ).encode()


def redacted(raw: dict[str, Any]) -> dict[str, Any]:
    """The provisioning data with every secret replaced, for tillbox-applied.toml."""
    out = {section: dict(values) for section, values in raw.items()}
    for section, key in SECRET_KEYS:
        if key in out.get(section, {}):
            out[section][key] = REDACTED
    return out


# -- steps -------------------------------------------------------------------------------
def say(message: str) -> None:
    print(f"tillbox-provision: {message}", flush=True)


def run(cmd: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TillError(f"`{' '.join(cmd)}` could not run ({exc})") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise TillError(f"`{' '.join(cmd)}` failed: {detail[-1] if detail else done.returncode}")
    return done.stdout


def init_till(data: DataDir, prov: Provisioning, tillbox: str) -> bool:
    """Create the till (log + device key) unless it exists; True when created now."""
    if data.exists():
        current = data.load_config().device_id
        if current != prov.device_id:
            raise ProvisionError(
                f"this card already belongs to device {current!r}, not "
                f"{prov.device_id!r}; a device keeps its id and key for life: "
                f'set [device] id = "{current}" or flash a new card'
            )
        return False
    if data.log_path.exists():
        raise TillError(
            f"{data.log_path} exists without tillbox.toml; keep this card for "
            "support (the log must not be overwritten)"
        )
    run(
        [
            tillbox,
            "init",
            "--data-dir",
            str(data.root),
            "--device-id",
            prov.device_id,
            "--tenant",
            prov.tenant,
        ]
    )
    return True


RAUC_CONF = Path("/etc/rauc/system.conf")
# Where the region's CA is named: the broker's TLS ([sync] tls_ca, which the bundle
# download falls back to) or, for a plain mqtt:// broker, the download's own (a CA in
# [sync] tls_ca would turn TLS on towards a broker that does not speak it).
CA_KEYS = (("sync", "tls_ca"), ("updates", "download_ca"))


def region_ca_path(data: DataDir) -> Path:
    return data.root / REGION_CA_FILE


def apply_region_ca(data: DataDir, config: Config, prov: Provisioning) -> None:
    """Write the region's CA beside the till's config and name it there; without one in
    the file, stop trusting the one an earlier file gave (only that one: a CA set by
    hand stays)."""
    path = region_ca_path(data)
    ours = [(s, k) for s, k in CA_KEYS if config.section(s).get(k) == str(path)]
    for section, key in ours:
        config.unset(section, key)
    if prov.region_ca is None:
        return
    atomic_write(path, prov.region_ca.encode(), mode=0o640)
    broker = config.section("sync").get("broker")
    plain = bool(broker) and not BrokerURL.parse(broker).tls
    section, key = CA_KEYS[1] if plain else CA_KEYS[0]
    config.update(section, **{key: str(path)})


def apply_config(data: DataDir, prov: Provisioning, rauc_conf: Path = RAUC_CONF) -> None:
    config = data.load_config()
    if rauc_conf.is_file():  # the image's A/B slots: updates go through RAUC, not the simulator
        config.update("updates", backend="rauc://")
    if prov.broker is not None:
        config.update("sync", broker=prov.broker)
    if prov.username is not None:
        config.update("sync", username=prov.username)
    if prov.password is not None:
        # The password goes into its own 0600 file (the sync agent's, after --chown),
        # never into tillbox.toml, which the kiosk and the sync agent both read.
        data.sync_dir.mkdir(exist_ok=True)
        atomic_write(data.broker_password_path, prov.password.encode() + b"\n", mode=0o600)
        config.unset("sync", "password")
        config.update("sync", password_file=str(data.broker_password_path))
    if prov.region_public_key is not None:
        config.update("sync", region_public_key=prov.region_public_key.lower())
    apply_region_ca(data, config, prov)
    if prov.download_rate is not None:
        config.update("updates", download_rate=prov.download_rate)
    if prov.timezone is not None:
        config.update("device", timezone=prov.timezone)
    config.update("shop", **prov.shop)
    config.update("location", **prov.location)
    data.save_config(config)
    os.chmod(data.config_path, 0o660)  # the kiosk and the sync agent (tillbox group)
    if prov.region_ca is None:  # named nowhere now (the config is saved): remove it
        region_ca_path(data).unlink(missing_ok=True)


def apply_system(system: Path, prov: Provisioning, zoneinfo: Path) -> dict[str, Any]:
    """Time zone, Wi-Fi and SSH under /data/system (the image's /etc points here)."""
    system.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {}
    if prov.timezone is not None:
        link = system / "localtime"
        tmp = system / ".localtime.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(zoneinfo / prov.timezone)
        os.replace(tmp, link)
        fsync_dir(system)
        done["timezone"] = prov.timezone
    wifi = system / "wpa_supplicant-wlan0.conf"
    if prov.wifi_ssid is not None:
        atomic_write(wifi, wpa_supplicant_conf(prov), mode=0o600)
        done["wifi"] = prov.wifi_ssid
    ssh = system / "ssh"
    authorized = ssh / "authorized_keys"
    if prov.ssh_keys:
        ssh.mkdir(mode=0o700, exist_ok=True)
        atomic_write(authorized, ("\n".join(prov.ssh_keys) + "\n").encode(), mode=0o600)
        host_key = ssh / "ssh_host_ed25519_key"
        if not host_key.exists() and shutil.which("ssh-keygen"):
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    prov.device_id,
                    "-f",
                    str(host_key),
                ]
            )
        done["ssh"] = len(prov.ssh_keys)
    elif authorized.exists():
        authorized.unlink()  # no key in the new file: SSH goes off again
        fsync_dir(ssh)
    return done


def chown_data(data: DataDir, kiosk: str = "kiosk", sync: str = "tillbox-sync") -> None:
    """The kiosk owns the till (log, config, the key it signs receipts with); the sync
    agent owns its own folder; both share the tillbox group. The sync agent gets the key
    as a systemd credential (see tillbox-sync.service), so the key stays 0600."""
    k, s = pwd.getpwnam(kiosk), pwd.getpwnam(sync)
    group = k.pw_gid
    root = data.root
    os.chown(root, k.pw_uid, group)
    os.chmod(root, 0o2770)
    for path in [data.config_path, *root.glob("log.db*")]:
        os.chown(path, k.pw_uid, group)
        os.chmod(path, 0o660)
    ca = region_ca_path(data)
    if ca.exists():  # read by the sync agent (MQTT, the download) and the kiosk's CLI
        os.chown(ca, k.pw_uid, group)
        os.chmod(ca, 0o640)
    for folder, owner in ((data.media_dir, k), (data.sync_dir, s)):
        folder.mkdir(exist_ok=True)
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, owner.pw_uid, group, follow_symlinks=False)
        os.chmod(folder, 0o2770)
    if data.keys_dir.exists():
        os.chown(data.keys_dir, k.pw_uid, group)
        os.chmod(data.keys_dir, 0o710)  # the group may pass through (device.pub), not list
        for path in data.keys_dir.iterdir():
            os.chown(path, k.pw_uid, group)


def remove_secrets(boot: Path, prov: Provisioning) -> None:
    """Applied and durable: now the plain-text secrets leave the boot partition."""
    import tomli_w

    header = (
        "# Applied by tillbox-provision. Secrets were removed from this card.\n"
        "# To change the settings, save a new tillbox.toml here and restart.\n"
    )
    atomic_write(boot / APPLIED_FILE, header.encode() + tomli_w.dumps(redacted(prov.raw)).encode())
    (boot / PROVISION_FILE).unlink()
    (boot / ERROR_FILE).unlink(missing_ok=True)
    fsync_dir(boot)


def report_error(boot: Path, message: str) -> None:
    say(f"error: {message}")
    try:
        atomic_write(boot / ERROR_FILE, (message + "\n").encode())
    except OSError:
        pass  # the boot partition may be what failed; the console and journal have it


# -- the data partition ------------------------------------------------------------------
def grow_data_partition(data_root: Path) -> str:
    """Grow the data partition (the card's last one) and its ext4 to the end of the card."""
    source = run(["findmnt", "-n", "-o", "SOURCE", "--target", str(data_root)]).strip()
    source = source.split("[", 1)[0]  # a bind mount shows as /dev/mmcblk0p3[/till]
    name = Path(source).name
    sysfs = Path("/sys/class/block") / name
    if not (sysfs / "partition").exists():
        return f"{source} is not a partition; not grown"
    number = int((sysfs / "partition").read_text())
    disk_name = sysfs.resolve().parent.name
    disk = f"/dev/{disk_name}"
    sectors = int((Path("/sys/class/block") / disk_name / "size").read_text())
    start = int((sysfs / "start").read_text())
    size = int((sysfs / "size").read_text())
    table = json.loads(run(["sfdisk", "--json", disk]))["partitiontable"]
    last = max(p["start"] + p["size"] for p in table["partitions"])
    if start + size != last:
        return f"{source} is not the last partition; not grown"
    if sectors - (start + size) < 2048:  # less than 1 MiB to gain: already grown
        return f"{source} fills the card ({size * 512 // 2**20} MiB)"
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-N", str(number), disk], stdin=", +\n")
    run(["partx", "-u", "--nr", str(number), disk])
    run(["resize2fs", source])
    new = int((sysfs / "size").read_text())
    return f"{source} grown from {size * 512 // 2**20} MiB to {new * 512 // 2**20} MiB"


# -- main --------------------------------------------------------------------------------
def provision(args: argparse.Namespace) -> int:
    boot, data = Path(args.boot), DataDir(Path(args.data_dir))
    zoneinfo = Path(args.zoneinfo)
    if args.grow_data:
        try:
            say(grow_data_partition(Path(args.system_dir)))
        except TillError as exc:
            say(f"warning: the data partition was not grown: {exc}")
    mounted = False
    if args.mount_boot and not os.path.ismount(boot):
        run(["mount", str(boot)])
        mounted = True
    try:
        path = boot / PROVISION_FILE
        if not path.exists():
            if data.exists():
                if args.chown:
                    chown_data(data)
                say(f"device {data.load_config().device_id}: nothing new to apply")
                return 0
            report_error(
                boot,
                f"not provisioned: no {PROVISION_FILE} on the boot partition; "
                f"copy {EXAMPLE_FILE} to {PROVISION_FILE}, fill it in and restart",
            )
            return 1
        try:
            text = read_bounded(path, PROVISION_LIMIT, "the provisioning file").decode("utf-8")
        except UnicodeDecodeError:
            raise ProvisionError(
                "tillbox.toml is not UTF-8 text; fix it: save it as UTF-8 and restart"
            ) from None
        prov = parse(text, zoneinfo)
        created = init_till(data, prov, args.tillbox)
        apply_config(data, prov)
        done = apply_system(Path(args.system_dir), prov, zoneinfo)
        if args.chown:
            chown_data(data)
        os.sync()  # everything on the data partition is durable before secrets go
        remove_secrets(boot, prov)
        public = data.public_key_path.read_text().strip()
        say(
            f"device {prov.device_id} {'created' if created else 'updated'}: public key "
            f"{public}, broker {prov.broker or '-'}, wifi {done.get('wifi', '-')}, "
            f"time zone {done.get('timezone', 'UTC')}, ssh "
            f"{'on (' + str(done['ssh']) + ' key)' if 'ssh' in done else 'off'}; secrets "
            "removed from the boot partition"
        )
        return 0
    except TillError as exc:
        report_error(boot, str(exc))
        return 1
    finally:
        if mounted:
            os.sync()
            run(["umount", str(boot)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tillbox-provision", description=__doc__.split("\n")[0])
    parser.add_argument("--boot", default="/boot/firmware", help="the boot partition")
    parser.add_argument("--data-dir", default="/var/lib/tillbox", help="the till's data folder")
    parser.add_argument(
        "--system-dir",
        default="/data/system",
        help="root-only machine state on the data partition (Wi-Fi, SSH, "
        "time zone): the image's /etc points here",
    )
    parser.add_argument("--zoneinfo", default="/usr/share/zoneinfo")
    parser.add_argument(
        "--tillbox",
        default=str(Path(sys.executable).with_name("tillbox")),
        help="the tillbox command",
    )
    parser.add_argument(
        "--mount-boot",
        action="store_true",
        help="mount the boot partition (fstab) for the run, then unmount it",
    )
    parser.add_argument(
        "--grow-data", action="store_true", help="grow the data partition to the end of the card"
    )
    parser.add_argument(
        "--chown",
        action="store_true",
        help="hand the data folder to the kiosk and tillbox-sync users",
    )
    return provision(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
