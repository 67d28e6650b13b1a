"""Compliance figures: receipt signing, bundle export and verify on a log of N sales.

Run: .venv/bin/python bench/compliance_bundle.py [N]   (default 5000 sales)
Prints figures; docs/performance.md records them with the machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from appliance.datadir import DataDir
from appliance.formats import receipt as receipt_sig
from appliance.pricing import CartLine
from appliance.till import Till
from compliance.bundle import export_bundle
from compliance.verify import verify_bundle


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ddir = DataDir(Path(tmp) / "till")
        with Till.init(ddir, "bench-till", demo=True) as till:
            till.open_shift()
            started = time.perf_counter()
            events = [
                till.sell([CartLine("MUG-01", 1), CartLine("KEYRING-ENG", 1)], "cash").event
                for _ in range(n)
            ]
            sell_s = time.perf_counter() - started
            started = time.perf_counter()
            payloads = [receipt_sig.receipt_qr_payload(till, e) for e in events[-1000:]]
            sign_us = (time.perf_counter() - started) / len(payloads) * 1e6
            pub = till.public_key_hex()
            started = time.perf_counter()
            for p in payloads:
                assert receipt_sig.verify_receipt_payload(p, pub).ok
            verify_us = (time.perf_counter() - started) / len(payloads) * 1e6
        # Baseline, same run: read every event and write its canonical line (what
        # `tillbox log export` does). Ratios against it survive a busy machine.
        from appliance.formats.canonical import canonical_bytes
        from appliance.log import EventLog

        log = EventLog.open(ddir.log_path, readonly=True)
        started = time.perf_counter()
        size = sum(len(canonical_bytes(e.to_json())) for e in log.events())
        base_s = time.perf_counter() - started
        log.close()
        out = Path(tmp) / "bundle.zip"
        started = time.perf_counter()
        result = export_bundle(ddir, out)
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        verdict = verify_bundle(out)
        verify_s = time.perf_counter() - started
        assert verdict.ok, verdict.problem
        print(f"sales recorded           {n} in {sell_s:.1f} s (setup, not a compliance figure)")
        print(f"receipt payload          {sign_us:.0f} us each (load key, find prev, sign)")
        print(f"receipt verify           {verify_us:.0f} us each")
        print(f"payload length           {len(payloads[-1])} bytes")
        print(
            f"bundle export            {result.events} events, {result.receipts} receipts in "
            f"{export_s:.2f} s ({result.events / export_s:.0f} events/s), "
            f"{result.bytes / 1e6:.2f} MB"
        )
        print(
            f"bundle verify            {verify_s:.2f} s ({result.events / verify_s:.0f} events/s)"
        )
        print(f"baseline (log export)    {base_s:.2f} s for {size / 1e6:.1f} MB of JSON lines")
        print(
            f"ratios to the baseline   export x{export_s / base_s:.1f}, "
            f"verify x{verify_s / base_s:.1f}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
