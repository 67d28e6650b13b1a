"""The kiosk as flashed: the image boots under QEMU with a display and a touch pointer,
draws the self-test screen and then the sell screen, and sells by taps; the sale reaches
a real mosquitto (the shipped region config) and ``tillbox edge serve`` on the host.

Slow (one boot of the arm64 image under TCG with software rendering), so it runs only
when asked: ``make image-test`` (TILLBOX_IMAGE_TEST=1, which builds the image) or
TILLBOX_IMAGE=path/to/tillbox-X.img[.xz].

- **Display**: a virtio-gpu (800x480, the official 7" panel's size) is the DRM device the
  kiosk draws on through SDL2's kmsdrm, with Mesa's software rasteriser; QMP
  ``screendump`` reads what it shows.
- **Touch**: a virtio tablet (an absolute pointer). QEMU 7.2 has no multitouch device,
  so this is the path of a single-touch panel, not the 7" panel's mtdev one.
- **Where to tap**: the kiosk-test probe unit (systemd/kiosktest.sh, enabled from the
  kernel command line only) starts the kiosk with ``TILLBOX_UI_PROBE`` and prints that
  file (the screen shown, each button's rectangle) on the serial console; the test taps
  with QMP ``input-send-event`` at those places, as a finger would. Nothing in the guest
  presses a button.
- **The sale**: the test enrols the till at the edge from the public key provisioning
  prints (as a technician would), taps through shift open, an item, pay, exact tender
  and confirm, waits for the edge to store it, then cuts the power and reads the log
  from the card.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import demo_catalog

REPO = Path(__file__).resolve().parents[2]
UBOOT_BIN = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
TILLBOX = REPO / ".venv" / "bin" / "tillbox"
WIDTH, HEIGHT = 800, 480
ABS_MAX = 0x7FFF  # QEMU's absolute axis range, whatever the screen size
BOOT_TIMEOUT_S = 1500  # to the first frame; generous: software GL under TCG
STEP_TIMEOUT_S = 240  # one screen change after a tap

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.skipif(
        not (os.environ.get("TILLBOX_IMAGE_TEST") or os.environ.get("TILLBOX_IMAGE")),
        reason="boots the SD image with a display under QEMU (many minutes); run `make image-test`",
    ),
]


def _boot_test():  # test_boot's helpers (--import-mode=importlib: not importable by name)
    spec = importlib.util.spec_from_file_location(
        "tillbox_test_boot_for_kiosk", Path(__file__).with_name("test_boot.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_tb = _boot_test()
PROVISIONING, partitions, sh, debugfs = _tb.PROVISIONING, _tb.partitions, _tb.sh, _tb.debugfs
UI_LINE = re.compile(r"TILLBOX-UI ([A-Za-z0-9+/=]+)\s*$")


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
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments: Any) -> Any:
        self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            answer = json.loads(self.file.readline())
            if "event" in answer:
                continue
            assert "error" not in answer, (command, answer)
            return answer["return"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class Screen:
    """What the guest shows (QMP screendump) and says (the probe lines on its console)."""

    def __init__(self, qmp: QMP, console: Path, shots: Path) -> None:
        self.qmp, self.console, self.shots = qmp, console, shots
        self.count = 0

    def state(self) -> dict[str, Any]:
        text = self.console.read_text(errors="replace") if self.console.exists() else ""
        for line in reversed(text.split("\n")[:-1]):  # complete lines only
            m = UI_LINE.search(line)
            if m:
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
        self.qmp.execute("screendump", filename=str(path))
        image = Image.open(path).convert("RGB")
        image.save(path.with_suffix(".png"))
        docs = os.environ.get("TILLBOX_SCREENSHOTS_DIR")  # docs/screenshots: qemu-image-*
        if docs and not name.endswith("-again"):
            image.save(Path(docs) / f"qemu-image-{name}-{WIDTH}x{HEIGHT}.png")
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
        self.qmp.execute("input-send-event", events=move)
        self.button(down=True)
        # A finger stays down for a frame or more: under emulation a frame takes about a
        # second, so hold until the kiosk has drawn two more (it has seen the press).
        pressed = self.state().get("frame", 0)
        self.wait(lambda s: s.get("frame", 0) >= pressed + 2, f"a frame with {name} pressed", 60)
        self.button(down=False)

    def button(self, *, down: bool) -> None:
        event = {"type": "btn", "data": {"down": down, "button": "left"}}
        self.qmp.execute("input-send-event", events=[event])


def drawn(image: Any, widgets: dict[str, dict], names: list[str]) -> None:
    """The screendump is not blank, and each named widget is drawn where the kiosk says:
    its rectangle holds more than one colour (its text or frame)."""
    colours = image.getcolors(WIDTH * HEIGHT)
    assert image.size == (WIDTH, HEIGHT)
    commonest = max(n for n, _ in colours)
    assert len(colours) > 16 and commonest < 0.9 * WIDTH * HEIGHT, (
        f"the screen is blank: {len(colours)} colours, the commonest on {commonest} pixels"
    )
    for name in names:
        w = widgets[name]
        box = image.crop((w["x"], w["y"], w["x"] + w["w"], w["y"] + w["h"]))
        inside = box.getcolors(w["w"] * w["h"]) or []
        assert len(inside) > 2, f"{name} at {w} is one colour on the screen: {inside[:3]}"


def test_the_kiosk_from_the_image_draws_its_screens_and_sells_by_taps(
    image_xz: Path, tmp_path: Path, region, db_url: str
):
    from nacl.signing import VerifyKey

    from drivers import uboot
    from edge import admin
    from edge.broker import LocalBroker
    from edge.store import Store
    from systest.sync import EDGE_PASSWORD, EDGE_USER, edge_proc, edge_ready, wait_for

    card = tmp_path / "card.img"
    if image_xz.suffix == ".img":
        sh("cp", "--sparse=always", str(image_xz), str(card), timeout=600)
    else:
        with card.open("wb") as out:
            subprocess.run(["xz", "-dc", str(image_xz)], stdout=out, check=True, timeout=900)
    boot = f"{card}@@{partitions(card)[0]['start'] * 512}"
    (tmp_path / "tillbox.toml").write_text(PROVISIONING.format(region_key=region.pub_hex))
    sh("mcopy", "-i", boot, str(tmp_path / "tillbox.toml"), "::/tillbox.toml")
    uboot.write(tmp_path / "uboot.env", {
        "tillbox_console": "console=ttyAMA0",
        "tillbox_bootargs": "systemd.wants=tillbox-kiosktest.service "
        "systemd.mask=systemd-timesyncd.service systemd.show_status=1",
    })  # fmt: skip
    sh("mcopy", "-i", boot, str(tmp_path / "uboot.env"), "::/uboot.env")
    with card.open("r+b") as fh:
        fh.truncate(card.stat().st_size + 512 * 2**20)
    disk = tmp_path / "testdisk.img"
    sh("mkfs.vfat", "-n", "TILLBOXTEST", "-C", str(disk), "8192")
    (tmp_path / "catalog.json").write_text(json.dumps(demo_catalog().to_json()))
    sh("mcopy", "-i", str(disk), str(tmp_path / "catalog.json"), "::/catalog.json")

    # -- the region on the host: the shipped broker config, an edge on SQLite
    device, password = "qemu-till-1", "broker-secret-4711"  # as in PROVISIONING
    region_broker = LocalBroker(
        tmp_path / "broker", {device: password}, workers={EDGE_USER: EDGE_PASSWORD},
        tenant="boottest",
    ).start()  # fmt: skip
    edge = edge_proc(tmp_path, db_url, region_broker.url, region).start()
    shots = tmp_path / "shots"
    shots.mkdir()
    console, qmp_path = tmp_path / "console.log", tmp_path / "qmp.sock"
    cmd = [
        "nice", "-n", "10", "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72",
        "-smp", "2", "-m", "2048", "-display", "none", "-monitor", "none",
        "-serial", f"file:{console}", "-no-reboot", "-bios", str(UBOOT_BIN),
        "-qmp", f"unix:{qmp_path},server=on,wait=off",
        "-drive", f"file={card},format=raw,if=none,id=card",
        "-device", "virtio-blk-pci,drive=card",
        "-drive", f"file={disk},format=raw,if=none,id=test",
        "-device", "virtio-blk-pci,drive=test",
        "-device", f"virtio-gpu-pci,xres={WIDTH},yres={HEIGHT},romfile=",
        "-device", "virtio-tablet-pci",
        "-netdev", "user,id=net,restrict=on,"
        f"guestfwd=tcp:10.0.2.100:1883-tcp:127.0.0.1:{region_broker.port}",
        "-device", "virtio-net-pci,netdev=net,romfile=",
    ]  # fmt: skip
    started = time.monotonic()
    qemu = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    qmp = None
    try:
        wait_for(lambda: edge_ready(edge), 30, "the edge")
        qmp = QMP(qmp_path)
        screen = Screen(qmp, console, shots)

        # -- enrol the till at the region from the key provisioning printed
        key_line = re.compile(rf"device {device} created: public key ([0-9a-f]{{64}})")
        wait_for(lambda: key_line.search(console.read_text(errors="replace")), BOOT_TIMEOUT_S,
                 "provisioning's public key", interval=2)  # fmt: skip
        public = key_line.search(console.read_text(errors="replace")).group(1)
        store = Store.open(db_url)
        try:
            admin.enroll(store, device, VerifyKey(bytes.fromhex(public)), "boottest")
        finally:
            store.close()

        # -- the self-test screen: checked, ready to trade (the probe unit enrolled it)
        state = screen.wait(lambda s: s.get("ready") and s.get("screen") == "start",
                            "the kiosk's first frame", BOOT_TIMEOUT_S)  # fmt: skip
        first_frame_s = time.monotonic() - started
        state = screen.wait(lambda s: "Ready to trade" in s["widgets"]["verdict"]["text"],
                            "the self-test verdict")  # fmt: skip
        drawn(screen.dump("start"), state["widgets"], ["verdict", "start-selling", "checks"])
        start_shot = screen.dump("start-again")

        # -- the sell screen, and a sale by taps
        screen.tap("start-selling")
        state = screen.wait_screen("sell")
        screen.tap("sell-open-shift")
        screen.wait(lambda s: "pin-ok" in s["widgets"], "the opening-float pad")
        screen.tap("pin-ok")  # an empty drawer: 0.00
        state = screen.wait(lambda s: s.get("screen") == "sell" and not s.get("popup")
                            and "sell-open-shift" not in s["widgets"]
                            and "item-MUG-01" in s["widgets"], "the shift to open")  # fmt: skip
        sell_shot = screen.dump("sell")
        drawn(sell_shot, state["widgets"], ["item-MUG-01", "pay"])
        assert sell_shot.tobytes() != start_shot.tobytes()  # a new screen was drawn
        screen.tap("item-MUG-01")
        screen.wait(lambda s: "12.00" in s["widgets"].get("total", {}).get("text", ""),
                    "the total")  # fmt: skip
        screen.tap("pay")
        screen.wait_screen("pay")
        screen.tap("tender-exact")
        screen.tap("confirm")
        state = screen.wait_screen("receipt")
        drawn(screen.dump("receipt"), state["widgets"], ["new-sale"])
        sale_s = state.get("last_sale", {})
        print(f"\nfirst frame {first_frame_s:.0f} s after power-on; sale facts {sale_s}")

        # -- the sale at the region, synced by the agent on the till
        def at_edge() -> list[dict]:
            store = Store.open(db_url)
            try:
                rows = store.events_of_types(["sale.completed"])
            finally:
                store.close()
            return [json.loads(body) for _t, dev, _s, _type, body, *_ in rows if dev == device]

        wait_for(lambda: at_edge(), STEP_TIMEOUT_S, "the sale at the edge", interval=2)
        stored = at_edge()
        assert len(stored) == 1 and stored[0]["payload"]["receipt_no"] == 1, stored
        assert [ln["sku"] for ln in stored[0]["payload"]["lines"]] == ["MUG-01"]
    finally:
        if qmp is not None:
            qmp.close()
        if qemu.poll() is None:
            qemu.kill()  # the power cut: the sale was durable before the receipt showed
        qemu.wait(timeout=60)
        edge.stop()
        region_broker.stop()

    # -- the till's own log, read from the card after the power cut
    data_off = partitions(card)[3]["start"] * 512
    till = tmp_path / "till-from-card"
    sh("debugfs", "-R", f"rdump /till {tmp_path}", f"{card}?offset={data_off}")
    (tmp_path / "till").rename(till)
    export = sh(str(TILLBOX), "log", "export", "--data-dir", str(till))
    sales = [json.loads(line) for line in export.splitlines() if '"sale.completed"' in line]
    assert len(sales) == 1 and [ln["sku"] for ln in sales[0]["payload"]["lines"]] == ["MUG-01"]
    sh(str(TILLBOX), "log", "verify", "--data-dir", str(till))
