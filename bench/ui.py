"""Kiosk benchmark: cold start to the first interactive frame, and Pay-tap to receipt.

    .venv/bin/python bench/ui.py [--starts 5] [--sales 60] [--size 800x480]

Runs the real ``tillbox kiosk`` on a private Xvfb with simulated devices (like the
tests) and prints figures; nothing is asserted.

- cold start: from spawning ``tillbox kiosk`` to the ``READY=1`` it sends over
  ``$NOTIFY_SOCKET`` after its first frame (the kiosk's own clock is also shown:
  from ``main()`` to the first frame).
- Pay tap: for each sale the "Take cash" button is tapped with a real X click; the
  kiosk notes the time of the touch, when ``Till.sell`` returned (durable: WAL fsync)
  and when the receipt bytes were handed to the printer (the simulator's TCP socket).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ui.testing import TILLBOX, Kiosk, make_till, start_xvfb


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def cold_starts(display: str, root: Path, runs: int, size: str) -> tuple[list[float], list[float]]:
    ddir = make_till(root / "start-till", fatal=["log"])
    sock_dir = Path(tempfile.mkdtemp(prefix="tbbench-", dir="/tmp"))
    path = sock_dir / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    spawn_to_ready, app_clock = [], []
    try:
        for _ in range(runs):
            probe = root / "start-probe.json"
            probe.unlink(missing_ok=True)
            env = {
                **os.environ,
                "DISPLAY": display,
                "NOTIFY_SOCKET": str(path),
                "TILLBOX_UI_PROBE": str(probe),
                "TILLBOX_KIVY_HOME": str(root / "kivy-home"),
            }
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [str(TILLBOX), "kiosk", "--data-dir", str(ddir.root), "--size", size],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            while sock.recv(64) != b"READY=1":
                pass
            spawn_to_ready.append(time.perf_counter() - t0)
            time.sleep(0.3)
            try:
                import json

                app_clock.append(json.loads(probe.read_text())["first_frame_s"])
            except (OSError, ValueError, KeyError):
                pass
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        sock_dir.rmdir()
    return spawn_to_ready, app_clock


def pay_taps(display: str, root: Path, sales: int, size: str) -> tuple[list[float], list[float]]:
    ddir = make_till(root / "sale-till", fatal=["log"])
    kiosk = Kiosk(display, ddir, size)
    durable, printer = [], []
    try:
        kiosk.wait_text("verdict", "Ready", timeout=30)
        kiosk.tap("start-selling")
        kiosk.wait_screen("sell")
        kiosk.open_shift()  # the opening float pad, then the shift is open
        for n in range(1, sales + 1):
            kiosk.tap("item-CAFE")
            kiosk.wait_text("total", "2.80")
            kiosk.tap("pay")
            kiosk.wait_screen("pay")
            kiosk.tap("confirm")
            state = kiosk.wait(
                lambda s, n=n: (
                    s.get("last_sale", {}).get("receipt_no") == n
                    and "tap_to_printer_ms" in s["last_sale"]
                ),
                20,
                f"sale {n} printed",
            )
            durable.append(state["last_sale"]["tap_to_durable_ms"])
            printer.append(state["last_sale"]["tap_to_printer_ms"])
            kiosk.tap("new-sale")
            kiosk.wait_screen("sell")
    finally:
        kiosk.stop()
    return durable, printer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--sales", type=int, default=60)
    parser.add_argument("--size", default="800x480")
    args = parser.parse_args()
    xvfb, display = start_xvfb()
    try:
        with tempfile.TemporaryDirectory(prefix="tillbox-bench-ui-") as tmp:
            root = Path(tmp)
            ready, app_clock = cold_starts(display, root, args.starts, args.size)
            durable, printer = pay_taps(display, root, args.sales, args.size)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=5)
    print(f"kiosk benchmark, {args.size}, Xvfb + Mesa llvmpipe, simulated devices")
    print(
        f"cold start, spawn -> READY=1 after first frame ({len(ready)} runs): "
        f"median {statistics.median(ready):.2f} s, max {max(ready):.2f} s"
    )
    if app_clock:
        print(
            f"  of which main() -> first frame (kiosk's own clock): "
            f"median {statistics.median(app_clock):.2f} s"
        )
    print(
        f"Pay tap -> sale durable ({len(durable)} sales): p50 {pct(durable, 50):.1f} ms, "
        f"p95 {pct(durable, 95):.1f} ms, max {max(durable):.1f} ms"
    )
    print(
        f"Pay tap -> receipt bytes handed to the printer: p50 {pct(printer, 50):.1f} ms, "
        f"p95 {pct(printer, 95):.1f} ms, max {max(printer):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
