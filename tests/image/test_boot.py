"""Build the SD-card image and boot it under QEMU with a provisioning file on the card.

Slow (a cold build is many minutes on 2 cores; see docs/performance.md), so it
runs only when asked: ``make image-test`` (TILLBOX_IMAGE_TEST=1). With
TILLBOX_IMAGE=path/to/tillbox-X.img.xz it boots that image instead of building one.
TILLBOX_QEMU_GPU=1 adds a virtio-gpu (KMS) device so the kiosk can try to start (software
rendering under emulation is slow; the kiosk's state is printed, not asserted).

What it checks, from outside the machine (the image file before and after the boot) and
from inside (one TILLBOX-BOOTTEST line the probe unit prints on the serial console):
the layout, no passwords or host keys in the image, provisioning applied (key born on
the device, secrets gone from the boot partition, data partition grown), the self-test
ran and printed its result, the sync agent is up (connected to a real broker), the root
is read-only."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from systest.qemu import (
    BROKER_PASSWORD,
    DEVICE,
    DISKID,
    SECRETS,
    TENANT,
    bootargs,
    debugfs,
    grow,
    partitions,
    provisioning,
    qemu_command,
    sh,
    unpack,
    write_boot_files,
)

BOOT_TIMEOUT_S = 900
GROW_MB = 512

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.skipif(
        not (os.environ.get("TILLBOX_IMAGE_TEST") or os.environ.get("TILLBOX_IMAGE")),
        reason="builds and boots the SD image (many minutes); run `make image-test`",
    ),
]


@pytest.fixture
def broker(tmp_path: Path):
    """mosquitto on a free port with the region's shipped config (dynamic security: the
    till's identity bound to its tenant and topics), as the guest's broker."""
    from edge.broker import LocalBroker

    b = LocalBroker(tmp_path / "broker", {DEVICE: BROKER_PASSWORD}, tenant=TENANT)
    yield b.start().port
    b.stop()


def probe_report(console_text: str) -> dict | None:
    """The probe's JSON report from the serial console, once its line is complete.

    The console file grows while QEMU writes it, so the last line may be cut mid-way
    (the report is a few KB); only newline-terminated lines count.
    """
    complete = console_text.split("\n")[:-1]
    for line in reversed(complete):
        if "TILLBOX-BOOTTEST " in line:
            return json.loads(line.split("TILLBOX-BOOTTEST ", 1)[1])
    return None


def test_image_builds_provisions_and_boots(image_xz: Path, tmp_path: Path, broker: int):
    image = tmp_path / "card.img"
    if image_xz.suffix != ".img":  # the build's raw image (TILLBOX_IMAGE=...img): no artefacts
        check_artefacts(image_xz)
    unpack(image_xz, image)
    boot_and_check(image, tmp_path, broker)


def check_artefacts(image_xz: Path) -> None:
    sums = image_xz.with_name(image_xz.name + ".sha256").read_text().split()
    assert sums[1] == image_xz.name
    digest = hashlib.sha256()
    with image_xz.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == sums[0]
    manifest = image_xz.with_name(image_xz.name.replace(".img.xz", ".manifest.txt")).read_text()
    for package in ("linux-image-arm64 ", "raspi-firmware ", "python3 ", "Kivy==", "tillbox=="):
        assert package in manifest, package
    assert "xserver" not in manifest and "lightdm" not in manifest  # no desktop


def boot_and_check(image: Path, tmp_path: Path, broker: int) -> None:

    # -- layout: FAT boot, root slots A and B (read-only; B empty), data last (so it can grow)
    parts = partitions(image)
    assert [p["type"] for p in parts] == ["c", "83", "83", "83"]
    boot_off, root_off, slot_b_off, data_off = (p["start"] * 512 for p in parts)
    assert parts[1]["size"] == parts[2]["size"]  # a release of slot A's size fits slot B
    data_sectors_before = parts[3]["size"]

    # -- nothing secret or personal in the image itself
    shadow = debugfs(image, root_off, "cat /etc/shadow")
    assert shadow.strip() and not any(
        f.split(":")[1].startswith("$") for f in shadow.splitlines() if ":" in f
    )
    assert "ssh_host" not in debugfs(image, root_off, "ls /etc/ssh")
    assert "keys" not in debugfs(image, data_off, "ls /till")
    # the root is whichever slot booted: not in fstab, read-only from boot.scr's root=... ro
    fstab = debugfs(image, root_off, "cat /etc/fstab")
    assert not re.search(r"^\S+\s+/\s", fstab, re.M) and f"PARTUUID={DISKID}-04  /data" in fstab
    rauc_conf = debugfs(image, root_off, "cat /etc/rauc/system.conf")
    for slot in ("02", "03"):
        assert f"device=/dev/disk/by-partuuid/{DISKID}-{slot}" in rauc_conf, rauc_conf
    assert "bootloader=uboot" in rauc_conf and "BEGIN CERTIFICATE" in debugfs(
        image, root_off, "cat /etc/rauc/keyring.pem"
    )
    assert "/boot/firmware/uboot.env 0x0000 0x4000" in debugfs(
        image, root_off, "cat /etc/fw_env.config"
    )
    wants = debugfs(image, root_off, "ls /etc/systemd/system/multi-user.target.wants")
    for unit in ("tillbox-selftest.service", "tillbox-ui.service", "tillbox-sync.service",
                 "tillbox-update-check.service"):  # fmt: skip
        assert unit in wants, unit

    # -- U-Boot, its boot script and the technician's file on the boot partition; the
    #    kernel and initrd in the slot (boot.scr loads them from the booted one)
    boot = f"{image}@@{boot_off}"
    listing = sh("mdir", "-b", "-i", boot, "::/").split()
    for name in ("::/u-boot.bin", "::/boot.scr", "::/tillbox.toml.example"):
        assert name in listing, name
    assert not any(n.startswith(("::/vmlinuz-", "::/initrd.img-")) for n in listing)
    assert "kernel=u-boot.bin" in sh("mtype", "-i", boot, "::/config.txt")
    for name in ("vmlinuz", "initrd.img"):
        assert "Type: symlink" in debugfs(image, root_off, f"stat /boot/{name}")
    from nacl.signing import SigningKey

    region_key = SigningKey.generate().verify_key.encode().hex()
    # The technician's file, and this machine's console and the probe for boot.scr
    # (U-Boot merges these into its defaults; the slot counters start from the script's own).
    write_boot_files(
        image, tmp_path, provisioning(region_key), bootargs("tillbox-boottest.service")
    )

    # A bigger card than the image: first boot must grow the data partition.
    grow(image, GROW_MB)

    # -- boot through U-Boot (Debian's u-boot-qemu): boot.scr picks slot A. The probe
    #    unit (enabled from the command line only) prints one line and powers off.
    #    Network: only the broker, forwarded to the test's mosquitto.
    console = tmp_path / "console.log"
    cmd = qemu_command(console, [image], {1883: broker})
    if os.environ.get("TILLBOX_QEMU_GPU"):  # a KMS device for the kiosk (software rendering)
        cmd += ["-device", "virtio-gpu-pci,romfile="]
    started = time.monotonic()
    qemu = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    probe = None
    try:
        while time.monotonic() - started < BOOT_TIMEOUT_S and qemu.poll() is None:
            probe = probe_report(console.read_text(errors="replace") if console.exists() else "")
            if probe is not None:
                break
            time.sleep(1)
        probe_s = time.monotonic() - started
        qemu.wait(timeout=120)  # the probe powers the machine off
        print(f"\nboot to probe {probe_s:.0f} s, to power-off {time.monotonic() - started:.0f} s")
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait(timeout=30)
    text = console.read_text(errors="replace")
    if probe is None:  # the probe's line and the power-off fell between two looks
        probe = probe_report(text)
    qemu_err = qemu.stderr.read().decode(errors="replace") if qemu.stderr else ""
    assert probe is not None, (
        f"no TILLBOX-BOOTTEST line; qemu: {qemu_err}\nconsole:\n{text[-6000:]}"
    )
    print(json.dumps(probe, indent=1, sort_keys=True))
    assert "tillbox: booting slot A (partition 2)" in text  # U-Boot's boot.scr
    assert f"root=PARTUUID={DISKID}-02 ro" in probe["cmdline"] and "rauc.slot=A" in probe["cmdline"]

    # -- inside: provisioning, self-test, sync agent, read-only root
    assert probe["provision_result"] == "success", probe
    assert "device qemu-till-1 created" in probe["provision_output"]
    # The first self-test ran before the kiosk and printed its table and verdict; a new
    # kiosk is not enrolled, so "permits" is its one failure. After enrolment (done by
    # the probe as the Onboarding screen would) the unit's next run passes.
    first = probe["selftest_first_output"]
    for check in ("log", "device_key", "disk", "printer"):
        assert re.search(rf"^{check}\s+PASS", first, re.M), first
    assert probe["selftest_first_result"] in ("success", "exit-code"), probe
    assert "enrolled: enrollment 1 signed" in probe["enroll_output"], probe["enroll_output"]
    assert "PASS: ready to trade" in probe["selftest_output"], probe["selftest_output"]
    assert probe["selftest_result"] == "success", probe["selftest_output"]
    assert probe["sync_active"] == "active", probe  # READY=1: subscribed at the broker
    assert probe["sync_user"] == "tillbox-sync"
    assert probe["key"] == "kiosk:tillbox:600"
    assert probe["data_dir_mode"] == "kiosk:tillbox:2770"
    assert probe["root_options"].split(",")[0] == "ro"
    assert "data=journal" in probe["data_options"]
    assert int(probe["data_mb"]) > 64 + GROW_MB // 2
    assert probe["ssh_active"] == "inactive"  # no authorised key given
    assert probe["localtime"] == "/usr/share/zoneinfo/Europe/Berlin"
    assert probe["wifi_conf"] == "root:600"
    assert "tillbox.toml " not in probe["boot_files"] + " "
    assert "[Manager]" not in probe["runtime_watchdog_usec"]
    assert probe["runtime_watchdog_usec"] == "10s"

    # -- outside, after power-off: the card as the technician would see it
    after = partitions(image)
    assert after[3]["start"] + after[3]["size"] == image.stat().st_size // 512
    assert after[3]["size"] > data_sectors_before
    listing = sh("mdir", "-b", "-i", boot, "::/").split()
    assert "::/tillbox.toml" not in listing and "::/tillbox-applied.toml" in listing
    for name in listing:
        if name.endswith(".toml") or name.endswith(".txt"):
            content = sh("mtype", "-i", boot, name)
            for secret in SECRETS:
                assert secret not in content, name
    key_stat = debugfs(image, after[3]["start"] * 512, "stat /till/keys/device.key")
    assert "Mode:  0600" in key_stat
