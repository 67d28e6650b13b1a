"""Driver figures: GRBL streaming protocols, receipt round trip, toolpath build.

    .venv/bin/python hil/bench_streaming.py

Not a test (no assertions on speed); prints figures and a ratio against a baseline
measured in the same run. Runs against the simulators, or against
TILLBOX_HIL_ENGRAVER / TILLBOX_HIL_PRINTER when set (laser off: S0 moves only).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.services.printing import print_sale_receipt
from appliance.till import Till
from drivers.grbl import Engraver
from drivers.grbl_job import EngraveJob
from drivers.printer import ReceiptPrinter
from drivers.toolpath import WorkArea, material, text_to_toolpath


def job(n):
    lines = ["G21", "G90", "M5 S0", "F3000"]
    lines += [f"G1 X{(i * 7) % 20}.{i % 10} Y{(i * 3) % 10}.5 S0" for i in range(n)]
    return lines + ["G0 X0 Y0"]


def send_and_wait(conn, lines):
    """The baseline: one line, wait for its ok, next line (always safe, always slow)."""
    conn.drain_acks()
    for line in lines:
        conn.write(line.encode() + b"\n")
        kind, value = conn.wait_ack()
        assert kind == "ok", (kind, value, line)


def bench_grbl(n=600, rounds=3):
    url = os.environ.get("TILLBOX_HIL_ENGRAVER") or "sim://?speed=100000"
    engraver = Engraver(url)
    conn = engraver.open()
    lines = job(n)
    counted, waited = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        result = EngraveJob(conn, lines).run()
        assert result.ok, result
        counted.append(time.perf_counter() - t)
        t = time.perf_counter()
        send_and_wait(conn, lines)
        waited.append(time.perf_counter() - t)
    dropped = engraver.simulator.dropped if engraver.simulator else "n/a"
    engraver.shutdown()
    c, w = statistics.median(counted), statistics.median(waited)
    print(f"GRBL {url}: {len(lines)} lines")
    print(f"  character counting: {c * 1000:8.1f} ms  {len(lines) / c:8.0f} lines/s")
    print(f"  send-and-wait     : {w * 1000:8.1f} ms  {len(lines) / w:8.0f} lines/s")
    print(f"  ratio (send-and-wait / counting): {w / c:.2f}x   simulator dropped: {dropped}")


def bench_receipts(n=30):
    url = os.environ.get("TILLBOX_HIL_PRINTER") or "sim://"
    with tempfile.TemporaryDirectory() as tmp:
        till = Till.init(DataDir(Path(tmp) / "t"), "bench", demo=True)
        till.open_shift()
        printer = ReceiptPrinter(url)
        sale = till.sell([CartLine("POSTCARD", 2), CartLine("BRATW", 1)], "cash").event
        print_sale_receipt(till, sale, printer)  # connect once
        times = []
        for _ in range(n):
            t = time.perf_counter()
            outcome = print_sale_receipt(till, sale, printer, qr_payload="X" * 120)
            times.append(time.perf_counter() - t)
            assert outcome.ok
        printer.shutdown()
        till.close()
    times.sort()
    print(f"receipt {url}: layout + status + send + status + log event, {n} receipts")
    print(
        f"  median {statistics.median(times) * 1000:.1f} ms, "
        f"p90 {times[int(n * 0.9) - 1] * 1000:.1f} ms"
    )


def bench_toolpath(n=50):
    area = WorkArea(60, 25)
    t = time.perf_counter()
    for _ in range(n):
        path = text_to_toolpath("Łódź ♥ Anna 2026", material("wood"), area)
    dt = (time.perf_counter() - t) / n
    print(
        f"toolpath 'Łódź ♥ Anna 2026': {dt * 1000:.2f} ms, {len(path.gcode)} G-code lines, "
        f"letters {path.letter_mm:.1f} mm"
    )


if __name__ == "__main__":
    bench_grbl()
    bench_receipts()
    bench_toolpath()
