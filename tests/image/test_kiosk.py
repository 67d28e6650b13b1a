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

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import demo_catalog
from systest.qemu import (
    BROKER_PASSWORD,
    DEVICE,
    HEIGHT,
    QMP,
    STEP_TIMEOUT_S,
    TENANT,
    WIDTH,
    Screen,
    bootargs,
    partitions,
    prepare_card,
    provisioning,
    qemu_command,
    sh,
)

REPO = Path(__file__).resolve().parents[2]
TILLBOX = REPO / ".venv" / "bin" / "tillbox"
BOOT_TIMEOUT_S = 1500  # to the first frame; generous: software GL under TCG

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.skipif(
        not (os.environ.get("TILLBOX_IMAGE_TEST") or os.environ.get("TILLBOX_IMAGE")),
        reason="boots the SD image with a display under QEMU (many minutes); run `make image-test`",
    ),
]


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

    from edge import admin
    from edge.broker import LocalBroker
    from edge.store import Store
    from systest.sync import EDGE_PASSWORD, EDGE_USER, edge_proc, edge_ready, wait_for

    card = tmp_path / "card.img"
    prepare_card(image_xz, card, tmp_path, provisioning(region.pub_hex),
                 bootargs("tillbox-kiosktest.service"), grow_mb=512)  # fmt: skip
    disk = tmp_path / "testdisk.img"
    sh("mkfs.vfat", "-n", "TILLBOXTEST", "-C", str(disk), "8192")
    (tmp_path / "catalog.json").write_text(json.dumps(demo_catalog().to_json()))
    sh("mcopy", "-i", str(disk), str(tmp_path / "catalog.json"), "::/catalog.json")

    # -- the region on the host: the shipped broker config, an edge on SQLite
    device = DEVICE
    region_broker = LocalBroker(
        tmp_path / "broker", {device: BROKER_PASSWORD}, workers={EDGE_USER: EDGE_PASSWORD},
        tenant=TENANT,
    ).start()  # fmt: skip
    edge = edge_proc(tmp_path, db_url, region_broker.url, region).start()
    shots = tmp_path / "shots"
    shots.mkdir()
    console, qmp_path = tmp_path / "console.log", tmp_path / "qmp.sock"
    # MQTT through a relay per connection: the agent may connect minutes after power-on,
    # after mosquitto dropped a chardev stream that sent no CONNECT (seen at load 4)
    cmd = qemu_command(console, [card, disk], {}, relays={1883: region_broker.port},
                       display=True, qmp=qmp_path)  # fmt: skip
    started = time.monotonic()
    qemu = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    qmp = None
    try:
        wait_for(lambda: edge_ready(edge), 30, "the edge")
        qmp = QMP(qmp_path)
        docs = os.environ.get("TILLBOX_SCREENSHOTS_DIR")  # docs/screenshots: qemu-image-*
        screen = Screen(qmp, console, shots, Path(docs) if docs else None)

        # -- enrol the till at the region from the key provisioning printed
        key_line = re.compile(rf"device {device} created: public key ([0-9a-f]{{64}})")
        wait_for(lambda: key_line.search(console.read_text(errors="replace")), BOOT_TIMEOUT_S,
                 "provisioning's public key", interval=2)  # fmt: skip
        public = key_line.search(console.read_text(errors="replace")).group(1)
        store = Store.open(db_url)
        try:
            admin.enroll(store, device, VerifyKey(bytes.fromhex(public)), TENANT)
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
    # as the next boot would see it: the data partition with its ext4 journal replayed
    # (debugfs reads without replaying it, and a power cut seconds after the sale leaves
    # the sale's blocks committed in the journal, not yet in place)
    part = partitions(card)[3]
    data = tmp_path / "data.ext4"
    sh("dd", f"if={card}", f"of={data}", "bs=512", f"skip={part['start']}",
       f"count={part['size']}", "conv=sparse", "status=none", timeout=600)  # fmt: skip
    replay = subprocess.run(["e2fsck", "-y", "-E", "journal_only", str(data)],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert replay.returncode in (0, 1), replay.stdout + replay.stderr  # 1: journal replayed
    till = tmp_path / "till-from-card"
    sh("debugfs", "-R", f"rdump /till {tmp_path}", str(data))
    (tmp_path / "till").rename(till)
    export = sh(str(TILLBOX), "log", "export", "--data-dir", str(till))
    sales = [json.loads(line) for line in export.splitlines() if '"sale.completed"' in line]
    assert len(sales) == 1 and [ln["sku"] for ln in sales[0]["payload"]["lines"]] == ["MUG-01"]
    sh(str(TILLBOX), "log", "verify", "--data-dir", str(till))
