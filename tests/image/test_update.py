"""The A/B update under QEMU, through U-Boot: the card as flashed, real RAUC, real U-Boot.

Slow (five boots of the arm64 image under TCG, two full-size bundles), so it runs only
when asked: ``make update-test`` (TILLBOX_IMAGE_TEST=1), which builds the image, or
TILLBOX_IMAGE=path/to/tillbox-X.img.xz with the build's root file system in
TILLBOX_ROOTFS (default image-build/cache/work/rootfs.ext4).

QEMU boots ``u-boot.bin`` from Debian's u-boot-qemu (``-bios``); U-Boot finds the card's
``boot.scr``, which picks the slot by RAUC's counters in ``uboot.env`` and loads that
slot's own kernel and initrd. The test writes only the U-Boot variables the QEMU machine
needs (its serial console, the probe unit, ``tillbox.headless=1``) into ``uboot.env``
before the first boot; everything after is U-Boot, RAUC and the till.

Headless: QEMU's virt machine has no display here, so the kiosk cannot draw its first
frame and ``tillbox.headless=1`` tells the boot check not to wait for it (the commit says
"not checked (headless)"). The broken v3 therefore breaks what the check can see under
QEMU: its sync agent exits at start.

Each boot, the probe unit (tillbox-updatetest, enabled from the command line) mounts a
second disk (FAT, TILLBOXTEST) with the bundles and this boot's ``run.sh``, runs it, and
powers off. ``run.sh`` prints ``TILLBOX-R NAME EXIT BASE64(OUTPUT)`` lines."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from appliance.catalog import demo_catalog
from drivers import uboot

REPO = Path(__file__).resolve().parents[2]


def _boot_test():  # test_boot's helpers (--import-mode=importlib: not importable by name)
    spec = importlib.util.spec_from_file_location(
        "tillbox_test_boot", Path(__file__).with_name("test_boot.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_tb = _boot_test()
DISKID, PROVISIONING, debugfs, partitions, sh, version = (
    _tb.DISKID,
    _tb.PROVISIONING,
    _tb.debugfs,
    _tb.partitions,
    _tb.sh,
    _tb.version,
)
broker = _tb.broker  # the fixture: a real mosquitto on a free port
WORK = REPO / "image-build" / "cache" / "work"
CACHE = REPO / "image-build" / "cache"
UBOOT_BIN = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
TILLBOX = REPO / ".venv" / "bin" / "tillbox"
BOOT_TIMEOUT_S = 1800
GROW_MB = 2048
COMPATIBLE = "tillbox-rpi4"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.skipif(
        not (os.environ.get("TILLBOX_IMAGE_TEST") or os.environ.get("TILLBOX_IMAGE")),
        reason="boots the SD image five times under QEMU (many minutes); run `make update-test`",
    ),
]

RESULT = re.compile(r"TILLBOX-R (\S+) (\d+) ([A-Za-z0-9+/=]*)\s*$")

RUN_HEAD = """\
T=/opt/tillbox/venv/bin/tillbox
D="--data-dir /var/lib/tillbox"
K="runuser -u kiosk -g tillbox --"
umask 0007
cd /
r() {
  name=$1; shift; out=$("$@" 2>&1); rc=$?
  echo "TILLBOX-R $name $rc $(printf %s "$out" | base64 -w0)"
}
state() {
  r status $T update status $D --json
  r sales sh -c "$T log export $D | grep -c '\\"sale.completed\\"'"
  r updates sh -c "$T log export $D | grep '\\"update\\.'"
  r chain $T log verify $D
  r key sha256sum /var/lib/tillbox/keys/device.key
  r check journalctl -b -u tillbox-update-check.service -o cat --no-pager
  r uenv fw_printenv BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
}
"""


def v(n: int) -> str:
    """The image's version with the minor number raised by ``n`` (v1 is the image)."""
    major, minor, _ = (int(x) for x in version().split("."))
    return f"{major}.{minor + n}.0"


def results(text: str) -> dict[str, tuple[int, str]]:
    found = {}
    for line in text.splitlines():
        m = RESULT.search(line)
        if m:
            out = base64.b64decode(m.group(3)).decode(errors="replace")
            found[m.group(1)] = (int(m.group(2)), out)
    return found


def bundle(rootfs: Path, out: Path, ver: str, *, compatible: str = COMPATIBLE, key=None) -> Path:
    cert, pkey = key or (CACHE / "test-release/release.pem", CACHE / "test-release/release.key")
    out.unlink(missing_ok=True)
    started = time.monotonic()
    sh(str(TILLBOX), "edge", "release", "build", "--rootfs", str(rootfs), "--version", ver,
       "--compatible", compatible, "--cert", str(cert), "--key", str(pkey), "--out", str(out),
       timeout=1800)  # fmt: skip
    print(f"bundle {out.name}: {out.stat().st_size / 2**20:.0f} MiB in "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return out


class Machine:
    """The card, the test disk, and QEMU booting them through U-Boot."""

    def __init__(self, tmp: Path, card: Path, disk: Path, broker_port: int) -> None:
        self.tmp, self.card, self.disk, self.port = tmp, card, disk, broker_port
        self.boots = 0
        self.times: list[tuple[str, float]] = []

    def cmd(self, console: Path) -> list[str]:
        return [
            "nice", "-n", "10", "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72",
            "-smp", "2", "-m", "2048", "-display", "none", "-monitor", "none",
            "-serial", f"file:{console}", "-no-reboot", "-bios", str(UBOOT_BIN),
            "-drive", f"file={self.card},format=raw,if=none,id=card",
            "-device", "virtio-blk-pci,drive=card",
            "-drive", f"file={self.disk},format=raw,if=none,id=test",
            "-device", "virtio-blk-pci,drive=test",
            "-netdev",
            f"user,id=net,restrict=on,guestfwd=tcp:10.0.2.100:1883-tcp:127.0.0.1:{self.port}",
            "-device", "virtio-net-pci,netdev=net,romfile=",
        ]  # fmt: skip

    def boot(self, name: str, run_sh: str, kill_when=None) -> str:
        """Boot once with ``run_sh`` on the test disk; the console's text once QEMU has
        exited (by itself, or killed when ``kill_when(text)`` is true)."""
        (self.tmp / "run.sh").write_text(RUN_HEAD + run_sh)
        sh("mcopy", "-o", "-i", str(self.disk), str(self.tmp / "run.sh"), "::/run.sh")
        self.boots += 1
        console = self.tmp / f"console-{self.boots}-{name}.log"
        started = time.monotonic()
        qemu = subprocess.Popen(self.cmd(console), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            while qemu.poll() is None and time.monotonic() - started < BOOT_TIMEOUT_S:
                if kill_when is not None and console.exists():
                    if kill_when(console.read_text(errors="replace")):
                        qemu.kill()  # the power cut
                        break
                time.sleep(1)
        finally:
            if qemu.poll() is None and time.monotonic() - started >= BOOT_TIMEOUT_S:
                qemu.kill()
            qemu.wait(timeout=60)
        elapsed = time.monotonic() - started
        self.times.append((name, elapsed))
        text = console.read_text(errors="replace")
        print(f"\nboot {self.boots} ({name}): {elapsed:.0f} s")
        assert elapsed < BOOT_TIMEOUT_S, f"{name}: QEMU did not stop\n{text[-5000:]}"
        return text


def status(found: dict[str, tuple[int, str]]) -> dict:
    code, out = found["status"]
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def make_bundles(rootfs: Path, bundles: Path, tmp_path: Path) -> None:
    """v2 (the same root, a newer version: make update-bundle), v3 (its sync agent exits
    at start), and small ones the till must refuse."""
    if (bundles / "v3.raucb").exists():
        return make_small(bundles, tmp_path)
    started = time.monotonic()
    sh("make", "-C", str(REPO), "update-bundle", f"UPDATE_VERSION={v(1)}", timeout=1800)
    made = REPO / "image-build" / "out" / f"tillbox-{COMPATIBLE}-{v(1)}.raucb"
    v2 = bundles / "v2.raucb"
    shutil.move(made, v2)
    print(f"make update-bundle: {v2.stat().st_size / 2**20:.0f} MiB in "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    broken = tmp_path / "broken.ext4"
    sh("cp", "--sparse=always", str(rootfs), str(broken))
    dropin = tmp_path / "broken.conf"
    dropin.write_text("[Service]\nExecStart=\nExecStart=/bin/false\n")
    debugfs_w = ["debugfs", "-w", "-R"]
    sh(*debugfs_w, "mkdir /usr/lib/systemd/system/tillbox-sync.service.d", str(broken))
    sh(*debugfs_w, f"write {dropin} /usr/lib/systemd/system/tillbox-sync.service.d/broken.conf",
       str(broken))  # fmt: skip
    bundle(broken, bundles / "v3.raucb", v(2))
    make_small(bundles, tmp_path)


def make_small(bundles: Path, tmp_path: Path) -> None:
    """Bundles refused before a byte is written: their payload is a small ext4."""
    small = tmp_path / "small.ext4"
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "noise").write_bytes(os.urandom(256 * 1024))  # rauc: > 4 KiB squashfs
    sh("mkfs.ext4", "-q", "-F", "-d", str(tmp_path / "small"), str(small), "8M")
    stranger = (tmp_path / "stranger.pem", tmp_path / "stranger.key")
    sh(str(TILLBOX), "edge", "release", "keygen", "--cert", str(stranger[0]),
       "--key", str(stranger[1]), "--name", "not our release")  # fmt: skip
    bundle(small, bundles / "badsig.raucb", v(5), key=stranger)
    bundle(small, bundles / "otherhw.raucb", v(5), compatible="tillbox-otherboard")
    bundle(small, bundles / "downgrade.raucb", version())
    whole = bundle(small, tmp_path / "whole.raucb", v(5))
    with whole.open("rb") as src, (bundles / "truncated.raucb").open("wb") as dst:
        dst.write(src.read(whole.stat().st_size // 2))


def test_ab_update_commit_rollback_powercut_refusals(image_xz: Path, tmp_path: Path, broker: int):
    from nacl.signing import SigningKey

    # the build's root file system (its rootfs.ext4) is what the bundles carry
    rootfs = Path(os.environ.get("TILLBOX_ROOTFS", WORK / "rootfs.ext4"))
    assert rootfs.is_file(), f"no root file system image {rootfs}"

    # -- the bundles (TILLBOX_UPDATE_BUNDLES: a folder with this test's earlier ones)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    reuse = os.environ.get("TILLBOX_UPDATE_BUNDLES")
    if reuse:
        for path in Path(reuse).glob("*.raucb"):
            shutil.copyfile(path, bundles / path.name)
    make_bundles(rootfs, bundles, tmp_path)

    # -- the test disk, the card
    disk = tmp_path / "testdisk.img"
    total = sum(p.stat().st_size for p in bundles.iterdir())
    sh("mkfs.vfat", "-n", "TILLBOXTEST", "-C", str(disk), str(total // 1024 + 65536))
    for path in sorted(bundles.iterdir()):
        sh("mcopy", "-i", str(disk), str(path), f"::/{path.name}", timeout=600)
    card = tmp_path / "card.img"
    if image_xz.suffix == ".img":  # the build's raw image
        sh("cp", "--sparse=always", str(image_xz), str(card), timeout=600)
    else:
        with card.open("wb") as out:
            subprocess.run(["xz", "-dc", str(image_xz)], stdout=out, check=True, timeout=900)
    parts = partitions(card)
    assert [p["type"] for p in parts] == ["c", "83", "83", "83"]
    boot = f"{card}@@{parts[0]['start'] * 512}"
    region_key = SigningKey.generate().verify_key.encode().hex()
    (tmp_path / "tillbox.toml").write_text(PROVISIONING.format(region_key=region_key))
    sh("mcopy", "-i", boot, str(tmp_path / "tillbox.toml"), "::/tillbox.toml")
    # Only what this machine needs; U-Boot's defaults and RAUC's counters are its own.
    env = tmp_path / "uboot.env"
    uboot.write(env, {
        "tillbox_console": "console=ttyAMA0",
        "tillbox_bootargs": "systemd.wants=tillbox-updatetest.service "
        "systemd.mask=systemd-timesyncd.service systemd.show_status=1 tillbox.headless=1",
    })  # fmt: skip
    sh("mcopy", "-i", boot, str(env), "::/uboot.env")
    with card.open("r+b") as fh:
        fh.truncate(card.stat().st_size + GROW_MB * 2**20)
    (tmp_path / "catalog.json").write_text(json.dumps(demo_catalog().to_json()))
    sh("mcopy", "-i", str(disk), str(tmp_path / "catalog.json"), "::/catalog.json")
    m = Machine(tmp_path, card, disk, broker)

    # -- boot 1: v1 from slot A; enrol, sell three sales, install v2, restart into it
    text = m.boot(
        "v1",
        """\
i=0; while [ $i -lt 60 ] && [ ! -f /var/lib/tillbox/tillbox.toml ]; do sleep 1; i=$((i+1)); done
r enroll $K $T enroll $D --operator "Update Test" --business "QEMU Stall" \
  --permit "market:QEMU-1:2030-12-31:camera" --attestation "I trade lawfully." --confirm --no-labels
systemctl restart tillbox-selftest.service
r catalog $K $T catalog apply $D /run/tillbox-test/catalog.json
r shift $K $T shift open $D --no-print
for n in 1 2 3; do r sale$n $K $T sale $D --item MUG-01 --pay card; done
state
start=$(date +%s)
r install $T update install $D /run/tillbox-test/v2.raucb
echo "TILLBOX-INSTALL-S $(( $(date +%s) - start ))"
r after $T update status $D --json
r reboot $T update reboot $D
""",
    )
    found = results(text)
    assert "tillbox: booting slot A" in text, text[-4000:]
    assert found["enroll"][0] == 0, found["enroll"]
    for n in (1, 2, 3):
        assert found[f"sale{n}"][0] == 0, found[f"sale{n}"]
    s1 = status(found)
    assert s1["slots"]["booted"]["bootname"] == "A" and s1["running_version"] == version()
    key1 = found["key"][1].split()[0]
    assert found["install"][0] == 0, found["install"]
    assert f"installed {v(1)} into slot B" in found["install"][1]
    install_s = re.search(r"TILLBOX-INSTALL-S (\d+)", text)
    print(f"install of v2 (copy to /data + rauc install): {install_s.group(1)} s")
    assert json.loads(found["after"][1].splitlines()[-1])["pending"] == "awaiting_reboot"

    # -- boot 2: U-Boot starts slot B; the check commits v2; the sales and key are there
    text = m.boot(
        "v2",
        """\
state
r install3 $T update install $D /run/tillbox-test/v3.raucb
r reboot $T update reboot $D
""",
    )
    found = results(text)
    assert "tillbox: booting slot B" in text, text[-4000:]
    s2 = status(found)
    assert s2["slots"]["booted"]["bootname"] == "B" and s2["running_version"] == v(1), s2
    assert s2["last_update"]["type"] == "update.committed", s2
    assert "not checked (headless)" in found["check"][1], found["check"]
    assert found["sales"][1].strip() == "3", found["sales"]
    assert found["chain"][0] == 0, found["chain"]
    assert found["key"][1].split()[0] == key1  # the data partition is the same
    assert found["install3"][0] == 0, found["install3"]
    assert f"installed {v(2)} into slot A" in found["install3"][1]

    # -- boot 3: v3 in slot A; its sync agent dies, the check marks it bad and restarts
    text = m.boot("v3", "state\n")
    assert "tillbox: booting slot A" in text, text[-4000:]
    assert "boot check: reject" in text, text[-6000:]

    # -- boot 4: back on v2 by itself; then a power cut in the middle of an install
    def installing(console: str) -> bool:
        return bool(re.search(r"TILLBOX-P .*\b([4-9]\d)%?", console)) or (
            "TILLBOX-P" in console and "Copying image" in console
        )

    text = m.boot(
        "v2-after-rollback",
        """\
state
( while sleep 1; do
    echo "TILLBOX-P $(busctl get-property de.pengutronix.rauc / \
      de.pengutronix.rauc.Installer Progress 2>&1)"
  done ) &
r install3 $T update install $D /run/tillbox-test/v3.raucb
""",
        kill_when=installing,
    )
    found = results(text)
    assert "tillbox: booting slot B" in text, text[-4000:]
    s4 = status(found)
    assert s4["slots"]["booted"]["bootname"] == "B" and s4["running_version"] == v(1), s4
    assert s4["last_update"]["type"] == "update.rolled_back", s4
    assert "sync agent" in s4["last_update"]["reason"], s4
    assert "install3" not in found, "the install finished before the power cut"

    # -- boot 5: still v2; the cut install is discarded; the refusals, one line each
    text = m.boot(
        "v2-after-powercut",
        """\
state
for b in badsig otherhw downgrade truncated; do
  r refuse-$b $T update install $D /run/tillbox-test/$b.raucb
done
r status-after $T update status $D --json
""",
    )
    found = results(text)
    assert "tillbox: booting slot B" in text, text[-4000:]
    s5 = status(found)
    assert s5["slots"]["booted"]["bootname"] == "B" and s5["running_version"] == v(1), s5
    assert s5["last_update"]["type"] == "update.failed", s5
    assert found["sales"][1].strip() == "3" and found["chain"][0] == 0
    assert found["key"][1].split()[0] == key1
    expect = {
        "badsig": (4, "is not signed by a release key this till trusts"),
        "otherhw": (1, "'tillbox-otherboard' hardware"),
        "downgrade": (1, "older than"),
        "truncated": (4, "copy it again"),
    }
    for name, (code, words) in expect.items():
        got_code, out = found[f"refuse-{name}"]
        lines = [ln for ln in out.splitlines() if ln.strip()]
        print(f"refused {name}: {got_code} {lines}")
        assert got_code == code and len(lines) == 1 and words in lines[0], (name, got_code, out)
        assert "Traceback" not in out
    after = json.loads(found["status-after"][1].splitlines()[-1])
    assert after["slots"] == s5["slots"]  # nothing was written

    # -- outside: the data partition's key, as the card holds it
    data_off = partitions(card)[3]["start"] * 512
    assert "Mode:  0600" in debugfs(card, data_off, "stat /till/keys/device.key")
    print("boot times: " + ", ".join(f"{n} {t:.0f} s" for n, t in m.times))
    assert DISKID in sh("sfdisk", "--dump", str(card))
