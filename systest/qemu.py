"""The SD image under QEMU, for the image tests (``tests/image``): the card as flashed,
booted through Debian's U-Boot for QEMU on the ``virt`` machine.

* the card: :func:`prepare_card` unpacks the image, puts the technician's
  ``tillbox.toml`` (:func:`provisioning`) and the U-Boot variables this machine needs
  (its serial console, the probe unit on the kernel command line) on the boot partition,
  and makes the card bigger than the image, as a real card is;
* looking at it from outside: :func:`partitions`, :func:`debugfs`;
* the machine: :func:`qemu_command` (user networking, with ``guestfwd`` rules from the
  guest's :data:`HOST_IP` to the host's services on 127.0.0.1: the broker, the region
  console; optionally a display and a touch pointer, and a QMP socket);
* the display: :class:`QMP` (QEMU's machine protocol) and :class:`Screen` (what the
  kiosk shows, what the kiosk-test probe says it shows, taps where a finger would).

Importing this module needs no pytest; a failed command raises AssertionError, as a
failed check in a test does.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from drivers import uboot

DISKID = "7111b0c5"  # the image's MBR disk id: PARTUUID=7111b0c5-0N
UBOOT_BIN = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")  # Debian's u-boot-qemu
HOST_IP = "10.0.2.100"  # the host as the guest reaches it (a guestfwd rule per service)
DEVICE, TENANT = "qemu-till-1", "boottest"
BROKER_PASSWORD, WIFI_PSK = "broker-secret-4711", "wifi-secret-0815"
SECRETS = (BROKER_PASSWORD, WIFI_PSK)  # must never stay on the boot partition
WIDTH, HEIGHT = 800, 480  # the official 7" panel's size
ABS_MAX = 0x7FFF  # QEMU's absolute pointer axis range, whatever the screen size
STEP_TIMEOUT_S = 240  # one screen change after a tap, under TCG with software GL
PROBE_BOOTARGS = "systemd.mask=systemd-timesyncd.service systemd.show_status=1"


def sh(*cmd: str, timeout: float = 300, stdin: str | None = None) -> str:
    """Run ``cmd``; its standard output. AssertionError (with its stderr) when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


def partitions(image: Path) -> list[dict]:
    """The card's partition table (sfdisk's JSON), checked to be the image's."""
    table = json.loads(sh("sfdisk", "--json", str(image)))["partitiontable"]
    if table["label"] != "dos" or table["id"] != f"0x{DISKID}":
        raise AssertionError(f"{image} is not a tillbox card: {table['label']} {table['id']}")
    return table["partitions"]


def debugfs(image: Path, offset: int, request: str) -> str:
    """``debugfs -R REQUEST`` on the ext4 file system at byte ``offset`` of ``image``."""
    return sh("debugfs", "-R", request, f"{image}?offset={offset}")


# -- the card -------------------------------------------------------------------------------
def provisioning(
    region_key: str,
    *,
    broker: str = f"mqtt://{HOST_IP}:1883",
    region_ca: str | None = None,
    download_rate: int | None = None,
) -> str:
    """The technician's ``tillbox.toml`` for the QEMU till (device :data:`DEVICE` of
    :data:`TENANT`): the region's public key (hex), its broker as the guest reaches it,
    optionally the region's CA (PEM) and the update download's rate."""
    ca = f'region_ca = """\n{region_ca.strip()}\n"""\n' if region_ca else ""
    updates = "" if download_rate is None else f"\n[updates]\ndownload_rate = {download_rate}\n"
    return f"""\
[device]
id = "{DEVICE}"
tenant = "{TENANT}"
timezone = "Europe/Berlin"

[sync]
broker = "{broker}"
username = "{DEVICE}"
password = "{BROKER_PASSWORD}"
region_public_key = "{region_key}"
{ca}
[shop]
name = "Boot Test Stall"
location = "QEMU virt, bench 1"

[location]
latitude = 48.1
longitude = 11.6

[wifi]
country = "DE"
ssid = "NoSuchNetwork"
psk = "{WIFI_PSK}"
{updates}"""


def bootargs(probe_unit: str, *more: str) -> str:
    """The kernel command line's extra words (U-Boot's ``tillbox_bootargs``): the probe
    unit, which no kiosk enables, and no time sync (the guest has no NTP server)."""
    return " ".join((f"systemd.wants={probe_unit}", PROBE_BOOTARGS, *more))


def unpack(image: Path, card: Path) -> None:
    """The card as flashed: the build's raw ``.img`` copied (sparse), or the ``.img.xz``."""
    if image.suffix == ".img":
        sh("cp", "--sparse=always", str(image), str(card), timeout=600)
        return
    with card.open("wb") as out:
        subprocess.run(["xz", "-dc", str(image)], stdout=out, check=True, timeout=900)


def write_boot_files(card: Path, folder: Path, toml_text: str, kernel_args: str) -> None:
    """``tillbox.toml`` and ``uboot.env`` onto the card's boot partition. Only the
    variables this machine needs: U-Boot merges them into its defaults, and the slot
    counters start from RAUC's boot script's own."""
    boot = f"{card}@@{partitions(card)[0]['start'] * 512}"
    (folder / "tillbox.toml").write_text(toml_text)
    sh("mcopy", "-o", "-i", boot, str(folder / "tillbox.toml"), "::/tillbox.toml")
    uboot.write(
        folder / "uboot.env",
        {"tillbox_console": "console=ttyAMA0", "tillbox_bootargs": kernel_args},
    )
    sh("mcopy", "-o", "-i", boot, str(folder / "uboot.env"), "::/uboot.env")


def grow(card: Path, mb: int) -> None:
    """A card ``mb`` MiB bigger than the image: the first boot grows the data partition."""
    with card.open("r+b") as fh:
        fh.truncate(card.stat().st_size + mb * 2**20)


def prepare_card(
    image: Path, card: Path, folder: Path, toml_text: str, kernel_args: str, grow_mb: int
) -> None:
    """:func:`unpack`, :func:`write_boot_files` and :func:`grow`, in that order."""
    unpack(image, card)
    write_boot_files(card, folder, toml_text, kernel_args)
    grow(card, grow_mb)


# -- the machine ----------------------------------------------------------------------------
def qemu_command(
    console: Path,
    disks: list[Path],
    forwards: dict[int, int],
    *,
    relays: dict[int, int] | None = None,
    display: bool = False,
    qmp: Path | None = None,
) -> list[str]:
    """QEMU for ``disks`` (the card first) through U-Boot, the serial console into the
    file ``console``, exiting at the guest's reboot (``-no-reboot``).

    Network (``restrict=on``: nothing else leaves the guest), each guest port on
    :data:`HOST_IP` to a host port on 127.0.0.1, one ``guestfwd`` per rule:

    * ``forwards``: a chardev QEMU connects once at its start and keeps for its lifetime,
      one stream for every guest connection. Only for a guest that connects soon and
      once: mosquitto drops a stream that sends no CONNECT within its timeout, and a
      reconnect finds the stream gone (the update test's agent lost its broker so);
    * ``relays``: ``socat`` started for each guest connection (``cmd:``), so each has its
      own connection to the host: HTTPS, where every request may be a new connection
      and a TLS session cannot share a stream.

    ``display``: a virtio-gpu of the 7" panel's size and a virtio tablet as the touch."""
    cmd = [
        "nice", "-n", "10", "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72",
        "-smp", "2", "-m", "2048", "-display", "none", "-monitor", "none",
        "-serial", f"file:{console}", "-no-reboot", "-bios", str(UBOOT_BIN),
    ]  # fmt: skip
    if qmp is not None:
        cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    for n, disk in enumerate(disks):
        cmd += ["-drive", f"file={disk},format=raw,if=none,id=disk{n}",
                "-device", f"virtio-blk-pci,drive=disk{n}"]  # fmt: skip
    if display:
        cmd += ["-device", f"virtio-gpu-pci,xres={WIDTH},yres={HEIGHT},romfile=",
                "-device", "virtio-tablet-pci"]  # fmt: skip
    rules = [f"guestfwd=tcp:{HOST_IP}:{guest}-tcp:127.0.0.1:{host}"
             for guest, host in forwards.items()]  # fmt: skip
    if relays:
        socat = shutil.which("socat")
        if socat is None:
            raise AssertionError("socat is not installed (apt-get install socat)")
        # its messages to a file: its stderr is the guest's connection too
        log = console.with_name("socat-relay.log")
        rules += [f"guestfwd=tcp:{HOST_IP}:{guest}-cmd:{socat} -lf {log} STDIO "
                  f"TCP:127.0.0.1:{host}" for guest, host in relays.items()]  # fmt: skip
    cmd += ["-netdev", ",".join(["user", "id=net", "restrict=on", *rules]),
            "-device", "virtio-net-pci,netdev=net,romfile="]  # fmt: skip
    return cmd


class QMP:
    """Just enough of QEMU's machine protocol: commands and their answers, events skipped."""

    def __init__(self, path: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())  # the greeting
        self.command("qmp_capabilities")

    def command(self, name: str, **arguments: Any) -> Any:
        """Run QMP command ``name``; its answer (AssertionError on an error answer)."""
        self.file.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            answer = json.loads(self.file.readline())
            if "event" in answer:
                continue
            if "error" in answer:
                raise AssertionError((name, answer))
            return answer["return"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# The kiosk-test probe's line (systemd/kiosktest.sh): base64 of the kiosk's probe file.
UI_LINE = re.compile(r"TILLBOX-UI ([A-Za-z0-9+/=]+)\s*$")


class Screen:
    """What the guest shows (QMP screendump) and says (the kiosk-test probe's lines on its
    console: the screen shown, each button's rectangle). ``docs``: a folder that also
    gets each first screendump as ``qemu-image-NAME-800x480.png`` (docs/screenshots)."""

    def __init__(self, qmp: QMP, console: Path, shots: Path, docs: Path | None = None) -> None:
        self.qmp, self.console, self.shots, self.docs = qmp, console, shots, docs
        self.count = 0

    def state(self) -> dict[str, Any]:
        text = self.console.read_text(errors="replace") if self.console.exists() else ""
        for line in reversed(text.split("\n")[:-1]):  # complete lines only
            m = UI_LINE.search(line)
            if not m:
                continue
            try:
                return json.loads(base64.b64decode(m.group(1)))
            except ValueError:
                continue  # a line cut by the console: look further back
        return {}

    def wait(self, predicate: Any, what: str, timeout: float = STEP_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state and predicate(state):
                return state
            time.sleep(1)
        tail = self.console.read_text(errors="replace")[-4000:]
        raise AssertionError(f"timed out waiting for {what}; last state {self.state()}\n{tail}")

    def wait_screen(self, name: str, timeout: float = STEP_TIMEOUT_S) -> dict:
        return self.wait(lambda s: s.get("screen") == name and not s.get("popup"),
                         f"screen {name}", timeout)  # fmt: skip

    def dump(self, name: str) -> Any:
        from PIL import Image

        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.ppm"
        self.qmp.command("screendump", filename=str(path))
        image = Image.open(path).convert("RGB")
        image.save(path.with_suffix(".png"))
        if self.docs is not None and not name.endswith("-again"):
            image.save(self.docs / f"qemu-image-{name}-{WIDTH}x{HEIGHT}.png")
        return image

    def tap(self, name: str, timeout: float = STEP_TIMEOUT_S) -> None:
        """Once ``name`` is shown, enabled and laid out (the same rectangle in two
        snapshots, frames apart), press and release at its centre."""
        previous: dict | None = None

        def ready(state: dict) -> bool:
            nonlocal previous
            w = state.get("widgets", {}).get(name)
            if not w or w["disabled"]:
                previous = None
                return False
            settled = previous is not None and previous["w"] == w
            settled = settled and state.get("frame", 0) >= previous["frame"] + 2
            if not settled and (previous is None or previous["w"] != w):
                previous = {"w": w, "frame": state.get("frame", 0)}
            return settled

        w = self.wait(ready, f"{name} to be tappable", timeout)["widgets"][name]
        x = round(w["cx"] * ABS_MAX / (WIDTH - 1))
        y = round(w["cy"] * ABS_MAX / (HEIGHT - 1))
        move = [{"type": "abs", "data": {"axis": "x", "value": x}},
                {"type": "abs", "data": {"axis": "y", "value": y}}]  # fmt: skip
        self.qmp.command("input-send-event", events=move)
        self.button(down=True)
        # A finger stays down for a frame or more: under emulation a frame takes about a
        # second, so hold until the kiosk has drawn two more (it has seen the press).
        pressed = self.state().get("frame", 0)
        self.wait(lambda s: s.get("frame", 0) >= pressed + 2, f"a frame with {name} pressed", 60)
        self.button(down=False)

    def button(self, *, down: bool) -> None:
        event = {"type": "btn", "data": {"down": down, "button": "left"}}
        self.qmp.command("input-send-event", events=[event])
