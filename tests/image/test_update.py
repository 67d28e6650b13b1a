"""The A/B update under QEMU, through U-Boot: the card as flashed, real RAUC, real U-Boot,
the kiosk on a display, and v2 delivered online by the region running on the host.

Slow (five boots of the arm64 image under TCG, two full-size bundles), so it runs only
when asked: ``make update-test`` (TILLBOX_IMAGE_TEST=1), which builds the image, or
TILLBOX_IMAGE=path/to/tillbox-X.img.xz with the build's root file system in
TILLBOX_ROOTFS (default image-build/cache/work/rootfs.ext4).

QEMU boots ``u-boot.bin`` from Debian's u-boot-qemu (``-bios``); U-Boot finds the card's
``boot.scr``, which picks the slot by RAUC's counters in ``uboot.env`` and loads that
slot's own kernel and initrd. The test writes only the U-Boot variables the QEMU machine
needs (its serial console, the probe unit) into ``uboot.env`` before the first boot;
everything after is U-Boot, RAUC and the till.

**The display.** Every boot has a virtio-gpu (800x480) and a virtio tablet, so the kiosk
draws its first frame (its READY=1) and the boot check waits for it before it commits
(no ``tillbox.headless=1``). The broken v3 is broken in its kiosk, as the issue asks: a
drop-in on ``tillbox-ui.service`` replaces its command with ``/bin/false``.

**The region**, on the host for the whole test: mosquitto with the shipped config, the
edge (``tillbox edge serve`` on SQLite) and the region console (``tillbox edge web
--releases``) over HTTPS with a private CA, serving ``v2.raucb``. The guest reaches them
at 10.0.2.100:1883 and 10.0.2.100:8443; the provisioning file gives the till the
region's key, its CA (``[sync] region_ca``) and ``download_rate = 0``.

1. v1 (slot A): onboarding, three sales, the shift closed. Then the region publishes v2
   (``tillbox edge release publish``, retained) and the till does the rest by itself:
   its sync agent downloads the bundle from the console, the update-apply timer installs
   it between shifts and restarts into it (QEMU exits at the reboot: ``-no-reboot``).
2. v2 (slot B) is committed; sales, key and log chain are there; the technician installs
   v3 from the test disk and restarts.
3. v3 (slot A): its kiosk never draws, the boot check rejects it and restarts.
4. v2 again, by U-Boot's fallback; ``update.rolled_back`` names the kiosk. A power cut
   in the middle of installing v3.
5. Still v2; the cut install is discarded; the refusals, one line each (a bad
   signature, other hardware, a downgrade, a truncated bundle, a full data partition).

Afterwards the edge holds ``update.committed`` and ``update.rolled_back`` and the till's
health says it runs v2.

Each boot, the probe unit (tillbox-updatetest, enabled from the command line) mounts a
second disk (FAT, TILLBOXTEST) with v3, the small bundles and this boot's ``run.sh``,
runs it, and powers off. ``run.sh`` prints ``TILLBOX-R NAME EXIT BASE64(OUTPUT)`` lines."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from appliance import events as ev
from appliance.catalog import demo_catalog
from systest.qemu import (
    BROKER_PASSWORD,
    DEVICE,
    DISKID,
    HOST_IP,
    TENANT,
    bootargs,
    debugfs,
    partitions,
    prepare_card,
    provisioning,
    qemu_command,
    sh,
)

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "image-build" / "cache" / "work"
CACHE = REPO / "image-build" / "cache"
RELEASE_CERT = CACHE / "test-release/release.pem"
RELEASE_KEY = CACHE / "test-release/release.key"
TILLBOX = REPO / ".venv" / "bin" / "tillbox"
BOOT_TIMEOUT_S = 1800
# Boot 1 also waits for the till to fetch v2, install it and restart by itself.
ONLINE_BOOT_TIMEOUT_S = 3000
GROW_MB = 2048
COMPATIBLE = "tillbox-rpi4"
CONSOLE_GUEST_PORT = 8443  # the region console as the guest reaches it, on HOST_IP
V2_URL = f"https://{HOST_IP}:{CONSOLE_GUEST_PORT}/releases/v2.raucb"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.skipif(
        not (os.environ.get("TILLBOX_IMAGE_TEST") or os.environ.get("TILLBOX_IMAGE")),
        reason="boots the SD image five times under QEMU (many minutes); run `make update-test`",
    ),
]

RESULT = re.compile(r"TILLBOX-R (\S+) (\d+) ([A-Za-z0-9+/=]*)\s*$")
KEY_LINE = re.compile(rf"device {DEVICE} created: public key ([0-9a-f]{{64}})")
# systemd's status line once the kiosk's start job is done, i.e. at its READY=1
KIOSK_STARTED = re.compile(r"Started (?:\x1b\[[0-9;]*m)?(?:tillbox-ui\.service|tillbox kiosk)")
SOLD = "TILLBOX-SOLD"  # boot 1's run.sh: the sales are made and the shift is closed

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


def version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


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
    cert, pkey = key or (RELEASE_CERT, RELEASE_KEY)
    out.unlink(missing_ok=True)
    started = time.monotonic()
    sh(str(TILLBOX), "edge", "release", "build", "--rootfs", str(rootfs), "--version", ver,
       "--compatible", compatible, "--cert", str(cert), "--key", str(pkey), "--out", str(out),
       timeout=1800)  # fmt: skip
    print(f"bundle {out.name}: {out.stat().st_size / 2**20:.0f} MiB in "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return out


class HostRegion:
    """The region on the host: mosquitto with the shipped config (the till, the edge's
    worker and the release publisher), ``tillbox edge serve`` and the region console over
    HTTPS serving ``releases``, with a certificate for the address the guest uses."""

    def __init__(self, tmp: Path, db_url: str, region, releases: Path) -> None:
        from edge.broker import LocalBroker
        from systest.console import ConsoleServer
        from systest.https import make_cert
        from systest.sync import EDGE_PASSWORD, EDGE_USER, PUBLISHER_PASSWORD, PUBLISHER_USER

        self.tmp, self.db_url, self.region = tmp, db_url, region
        self.broker = LocalBroker(
            tmp / "broker", {DEVICE: BROKER_PASSWORD}, workers={EDGE_USER: EDGE_PASSWORD},
            publishers={PUBLISHER_USER: PUBLISHER_PASSWORD}, tenant=TENANT,
        )  # fmt: skip
        self.cert, key = make_cert(tmp / "tls", "region-console", extra_sans=(f"IP:{HOST_IP}",))
        self.console = ConsoleServer(db_url, tmp, None, "--releases", str(releases),
                                     "--access-log", tls=(self.cert, key))  # fmt: skip
        self.publisher_pw = tmp / "publisher-password"
        self.publisher_pw.write_text(PUBLISHER_PASSWORD)
        self.publisher_pw.chmod(0o600)
        self.publisher = PUBLISHER_USER
        self.edge = None
        self.public_key: str | None = None

    def start(self, stack: ExitStack) -> HostRegion:
        from systest.sync import edge_proc, edge_ready, wait_for

        self.broker.start()
        stack.callback(self.broker.stop)
        self.edge = edge_proc(self.tmp, self.db_url, self.broker.url, self.region).start()
        stack.callback(self.edge.stop)
        self.console.start()
        stack.callback(self.console.stop)
        wait_for(lambda: edge_ready(self.edge), 30, "the edge")
        return self

    def enroll_when_shown(self, console_text: str) -> None:
        """Enrol the till at the edge from the public key provisioning prints on the
        console, as a technician would (once)."""
        from nacl.signing import VerifyKey

        from edge import admin
        from edge.store import Store

        m = KEY_LINE.search(console_text)
        if self.public_key is not None or m is None:
            return
        store = Store.open(self.db_url)
        try:
            admin.enroll(store, DEVICE, VerifyKey(bytes.fromhex(m.group(1))), TENANT)
        finally:
            store.close()
        self.public_key = m.group(1)

    def publish(self, bundle: Path, url: str) -> dict:
        """``tillbox edge release publish``: the signed notice, retained for the tenant."""
        out = subprocess.run(
            [str(TILLBOX), "edge", "release", "publish", "--db", self.db_url,
             "--key", str(self.region.key_path), "--tenant", TENANT, "--bundle", str(bundle),
             "--cert", str(RELEASE_CERT), "--url", url, "--broker", self.broker.url,
             "--username", self.publisher, "--password-file", str(self.publisher_pw), "--json"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def fetches(self, name: str) -> list[str]:
        """The console's access-log lines of the bundle's downloads (200 or 206)."""
        wanted = re.compile(rf'"GET /releases/{re.escape(name)} HTTP/1\.1" (200|206)')
        return [ln for ln in self.console.proc.log().splitlines() if wanted.search(ln)]

    def stored(self, types: list[str]) -> list[dict]:
        """The till's events of ``types`` as the edge stored them."""
        from edge.store import Store

        store = Store.open(self.db_url)
        try:
            rows = store.events_of_types(types)
        finally:
            store.close()
        return [json.loads(body) for _t, dev, _s, _type, body, *_ in rows if dev == DEVICE]

    def health(self) -> tuple[dict | None, list[dict]]:
        """The till's latest health message at the edge, and the kept ones."""
        from edge.store import Store

        store = Store.open(self.db_url)
        try:
            latest = store.telemetry_latest(DEVICE)
            history = [json.loads(body) for _r, body in store.telemetry_history(DEVICE)]
        finally:
            store.close()
        return (json.loads(latest[3]) if latest else None), history


class Machine:
    """The card, the test disk, and QEMU booting them through U-Boot with a display."""

    def __init__(self, tmp: Path, card: Path, disk: Path, region: HostRegion) -> None:
        self.tmp, self.card, self.disk, self.region = tmp, card, disk, region
        self.boots = 0
        self.times: list[tuple[str, float, float | None]] = []

    def cmd(self, console: Path) -> list[str]:
        return qemu_command(
            console, [self.card, self.disk], {},
            # a relay per connection for MQTT too: the agent connects minutes after
            # power-on and again after every cut, and mosquitto drops a stream that
            # sent no CONNECT within its timeout (one chardev stream would be gone)
            relays={1883: self.region.broker.port, CONSOLE_GUEST_PORT: self.region.console.port},
            display=True,
        )  # fmt: skip

    def boot(
        self,
        name: str,
        run_sh: str,
        *,
        timeout: float = BOOT_TIMEOUT_S,
        kill_when: Callable[[str], bool] | None = None,
        meanwhile: Callable[[str], None] | None = None,
    ) -> str:
        """Boot once with ``run_sh`` on the test disk; the console's text once QEMU has
        exited (by itself, or killed when ``kill_when(text)`` is true). ``meanwhile(text)``
        runs every second while it is up (the region's part: enrolment, publishing)."""
        (self.tmp / "run.sh").write_text(RUN_HEAD + run_sh)
        sh("mcopy", "-o", "-i", str(self.disk), str(self.tmp / "run.sh"), "::/run.sh")
        self.boots += 1
        console = self.tmp / f"console-{self.boots}-{name}.log"
        started = time.monotonic()
        first_frame: float | None = None
        qemu = subprocess.Popen(self.cmd(console), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            while qemu.poll() is None and time.monotonic() - started < timeout:
                text = console.read_text(errors="replace") if console.exists() else ""
                if first_frame is None and KIOSK_STARTED.search(text):
                    first_frame = time.monotonic() - started
                if meanwhile is not None:
                    meanwhile(text)
                if kill_when is not None and kill_when(text):
                    qemu.kill()  # the power cut
                    break
                time.sleep(1)
        finally:
            if qemu.poll() is None and time.monotonic() - started >= timeout:
                qemu.kill()
            qemu.wait(timeout=60)
        elapsed = time.monotonic() - started
        self.times.append((name, elapsed, first_frame))
        text = console.read_text(errors="replace")
        frame = f"first frame {first_frame:.0f} s" if first_frame else "no first frame"
        print(f"\nboot {self.boots} ({name}): {elapsed:.0f} s, {frame} after power-on")
        qemu_err = qemu.stderr.read().decode(errors="replace") if qemu.stderr else ""
        assert elapsed < timeout, f"{name}: QEMU did not stop\n{qemu_err}\n{text[-5000:]}"
        return text


def status(found: dict[str, tuple[int, str]]) -> dict:
    code, out = found["status"]
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def update_events(found: dict[str, tuple[int, str]]) -> list[dict]:
    """The ``update.*`` events of the till's log, as ``state`` exported them."""
    return [json.loads(line) for line in found["updates"][1].splitlines() if line.strip()]


def make_bundles(rootfs: Path, bundles: Path, tmp_path: Path) -> None:
    """v2 (the same root, a newer version: make update-bundle), v3 (its kiosk exits at
    start), and small ones the till must refuse."""
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
    sh(*debugfs_w, "mkdir /usr/lib/systemd/system/tillbox-ui.service.d", str(broken))
    sh(*debugfs_w, f"write {dropin} /usr/lib/systemd/system/tillbox-ui.service.d/broken.conf",
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


def test_ab_update_online_commit_rollback_powercut_refusals(
    image_xz: Path, tmp_path: Path, region, db_url: str
):
    # the build's root file system (its rootfs.ext4) is what the bundles carry
    rootfs = Path(os.environ.get("TILLBOX_ROOTFS", WORK / "rootfs.ext4"))
    assert rootfs.is_file(), f"no root file system image {rootfs}"

    # -- the bundles (TILLBOX_UPDATE_BUNDLES: a folder with this test's earlier ones);
    #    v2 goes to the region console's releases folder, the rest onto the test disk
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    reuse = os.environ.get("TILLBOX_UPDATE_BUNDLES")
    if reuse:
        for path in Path(reuse).glob("*.raucb"):
            shutil.copyfile(path, bundles / path.name)
    make_bundles(rootfs, bundles, tmp_path)
    releases = tmp_path / "releases"
    releases.mkdir()
    v2 = releases / "v2.raucb"
    shutil.move(bundles / "v2.raucb", v2)

    # -- the test disk, the card
    disk = tmp_path / "testdisk.img"
    total = sum(p.stat().st_size for p in bundles.iterdir())
    sh("mkfs.vfat", "-n", "TILLBOXTEST", "-C", str(disk), str(total // 1024 + 65536))
    for path in sorted(bundles.iterdir()):
        sh("mcopy", "-i", str(disk), str(path), f"::/{path.name}", timeout=600)
    (tmp_path / "catalog.json").write_text(json.dumps(demo_catalog().to_json()))
    sh("mcopy", "-i", str(disk), str(tmp_path / "catalog.json"), "::/catalog.json")

    with ExitStack() as stack:
        host = HostRegion(tmp_path, db_url, region, releases).start(stack)
        card = tmp_path / "card.img"
        toml = provisioning(region.pub_hex, region_ca=host.cert.read_text(), download_rate=0)
        prepare_card(image_xz, card, tmp_path, toml, bootargs("tillbox-updatetest.service"),
                     GROW_MB)  # fmt: skip
        assert [p["type"] for p in partitions(card)] == ["c", "83", "83", "83"]
        m = Machine(tmp_path, card, disk, host)
        run_boots(m, host, v2)
        # -- at the edge: the till's update events came up like any other, and its health
        from systest.sync import wait_for

        kinds = [ev.UPDATE_COMMITTED, ev.UPDATE_ROLLED_BACK]
        stored = wait_for(lambda: len({e["type"] for e in host.stored(kinds)}) == 2 and
                          host.stored(kinds), 60, "the update events at the edge")  # fmt: skip
        by_type = {e["type"]: e["payload"] for e in stored}
        assert by_type[ev.UPDATE_COMMITTED]["to_version"] == v(1), stored
        rolled_back = by_type[ev.UPDATE_ROLLED_BACK]
        assert rolled_back["to_version"] == v(2), stored
        assert "kiosk did not draw its first frame" in rolled_back["reason"], stored
        latest, history = host.health()
        assert latest is not None and latest["update"]["running"] == v(1), latest
        seen = [(h["update"]["state"], h["update"]["version"]) for h in history if "update" in h]
        print(f"health at the edge: {len(history)} messages, update states {sorted(set(seen))}")
        assert ("committed", v(1)) in seen, seen

    # -- outside: the data partition's key, as the card holds it
    data_off = partitions(card)[3]["start"] * 512
    assert "Mode:  0600" in debugfs(card, data_off, "stat /till/keys/device.key")
    print("boot times: " + ", ".join(f"{n} {t:.0f} s" for n, t, _ in m.times))
    print("first frames: " + ", ".join(
        f"{n} {f:.0f} s" if f else f"{n} none" for n, _, f in m.times))  # fmt: skip
    assert DISKID in sh("sfdisk", "--dump", str(card))


def run_boots(m: Machine, host: HostRegion, v2: Path) -> None:
    """Boots 1-5 (the module's docstring)."""
    published: dict[str, float] = {}

    def region_side(console: str) -> None:
        host.enroll_when_shown(console)
        # v2 is published once the sales are made and the shift is closed: before, a
        # till that has not opened a shift yet is "between shifts" and would install
        # it at once. The notice reaches the till live on its MQTT session.
        if SOLD in console and not published:
            info = host.publish(v2, V2_URL)
            assert info["notice"]["version"] == v(1), info
            published["at"] = time.monotonic()

    # -- boot 1: v1 from slot A; onboard, sell three sales, close the shift; the region
    #    publishes v2 and the till fetches, installs and restarts into it by itself
    text = m.boot(
        "v1",
        f"""\
i=0; while [ $i -lt 120 ] && [ ! -f /var/lib/tillbox/tillbox.toml ]; do sleep 1; i=$((i+1)); done
r enroll $K $T enroll $D --operator "Update Test" --business "QEMU Stall" \\
  --permit "market:QEMU-1:2030-12-31:camera" --attestation "I trade lawfully." --confirm --no-labels
systemctl restart tillbox-selftest.service
r catalog $K $T catalog apply $D /run/tillbox-test/catalog.json
r shift $K $T shift open $D --no-print
for n in 1 2 3; do r sale$n $K $T sale $D --item MUG-01 --pay card; done
r close $K $T shift close $D --no-print
state
echo "{SOLD}"
# no power-off from here: the till restarts into v2 by itself (QEMU exits at the reboot)
i=0; while [ $i -lt 100 ]; do sleep 15; r progress $T update status $D; i=$((i+1)); done
""",
        timeout=ONLINE_BOOT_TIMEOUT_S,
        meanwhile=region_side,
    )
    found = results(text)
    assert "tillbox: booting slot A" in text, text[-4000:]
    assert host.public_key is not None, "provisioning printed no public key"
    assert found["enroll"][0] == 0, found["enroll"]
    for n in (1, 2, 3):
        assert found[f"sale{n}"][0] == 0, found[f"sale{n}"]
    assert found["close"][0] == 0, found["close"]
    s1 = status(found)
    assert s1["slots"]["booted"]["bootname"] == "A" and s1["running_version"] == version()
    key1 = found["key"][1].split()[0]
    assert published, f"the run never got to {SOLD}\n{text[-4000:]}"
    print(f"v2 published; the till restarted {time.monotonic() - published['at']:.0f} s later"
          f" (last progress: {found.get('progress', (0, '-'))[1].strip()[-300:]})")  # fmt: skip
    assert "reboot: Restarting system" in text, f"the till did not restart\n{text[-5000:]}"
    # root's tillbox-update-apply (its timer) installed it and restarted, not the test
    assert f"update apply: installed the region's offer ({v(1)})" in text, text[-5000:]
    assert f"update apply: restarting into update {v(1)}" in text, text[-5000:]
    fetched = host.fetches(v2.name)
    print(f"the console served {v2.name} {len(fetched)} time(s): {fetched[-3:]}")
    assert fetched, host.console.proc.log()[-3000:]

    # -- boot 2: U-Boot starts slot B; the check commits v2 once the kiosk has drawn;
    #    the sales and key are there; the technician installs v3 from the test disk
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
    assert "boot check: commit" in found["check"][1], found["check"]
    assert "kiosk active" in found["check"][1], found["check"]  # waited for its READY=1
    events = update_events(found)
    types = [e["type"] for e in events]
    online = [ev.UPDATE_OFFERED, ev.UPDATE_DOWNLOADED, ev.UPDATE_STARTED, ev.UPDATE_INSTALLED,
              ev.UPDATE_COMMITTED]  # fmt: skip
    it = iter(types)
    assert all(t in it for t in online), types  # in this order, others may come between
    first = {t: next(e for e in events if e["type"] == t) for t in online}
    assert first[ev.UPDATE_OFFERED]["payload"]["notice"]["version"] == v(1), first
    assert first[ev.UPDATE_STARTED]["payload"]["by"] == "schedule", first
    assert first[ev.UPDATE_STARTED]["payload"]["to_version"] == v(1), first
    assert first[ev.UPDATE_DOWNLOADED]["payload"]["url"] == V2_URL, first
    wall = {t: e["wall_ms"] / 1000 for t, e in first.items()}
    print(f"online update of v2 ({v2.stat().st_size / 2**20:.0f} MiB), the till's clock: "
          f"offered -> downloaded {wall[ev.UPDATE_DOWNLOADED] - wall[ev.UPDATE_OFFERED]:.0f} s, "
          f"-> install started {wall[ev.UPDATE_STARTED] - wall[ev.UPDATE_DOWNLOADED]:.0f} s, "
          f"install {wall[ev.UPDATE_INSTALLED] - wall[ev.UPDATE_STARTED]:.0f} s")  # fmt: skip
    assert found["sales"][1].strip() == "3", found["sales"]
    assert found["chain"][0] == 0, found["chain"]
    assert found["key"][1].split()[0] == key1  # the data partition is the same
    assert found["install3"][0] == 0, found["install3"]
    assert f"installed {v(2)} into slot A" in found["install3"][1]

    # -- boot 3: v3 in slot A; its kiosk exits at start, the check marks it bad and restarts
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
    assert "kiosk did not draw its first frame" in s4["last_update"]["reason"], s4
    assert "install3" not in found, "the install finished before the power cut"

    # -- boot 5: still v2; the cut install is discarded; the refusals, one line each
    text = m.boot(
        "v2-after-powercut",
        """\
state
for b in badsig otherhw downgrade truncated; do
  r refuse-$b $T update install $D /run/tillbox-test/$b.raucb
done
# a full data partition: fill it to 100 MiB free (the log keeps working), try v3
data=$(findmnt -n -o TARGET -T /var/lib/tillbox)
avail=$(df -B1 --output=avail "$data" | tail -n1)
fallocate -l $((avail - 100 * 1048576)) "$data/updatetest-fill"
r refuse-full $T update install $D /run/tillbox-test/v3.raucb
rm -f "$data/updatetest-fill"
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
        "full": (3, "MiB free and the bundle needs"),
    }
    for name, (code, words) in expect.items():
        got_code, out = found[f"refuse-{name}"]
        lines = [ln for ln in out.splitlines() if ln.strip()]
        print(f"refused {name}: {got_code} {lines}")
        assert got_code == code and len(lines) == 1 and words in lines[0], (name, got_code, out)
        assert "Traceback" not in out
    after = json.loads(found["status-after"][1].splitlines()[-1])
    assert after["slots"] == s5["slots"]  # nothing was written
