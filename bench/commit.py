"""Durable commit latency of a three-line cash sale, against a bare SQLite baseline.

Ours: ``Till.sell`` (pricing, canonical JSON, SHA-256 chain, projections, one
``BEGIN IMMEDIATE ... COMMIT`` in WAL mode with ``synchronous=FULL``).
Baseline, same file system, same run: one plain ``INSERT`` of the same payload
bytes + ``COMMIT`` with the same journal mode and durability settings.
The two are measured in alternating blocks so background noise hits both.

Last line: ``ratio=X.XX`` (our p50 / baseline p50). Usage::

    .venv/bin/python bench/commit.py [--sales 3000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.datadir import DataDir
from appliance.formats.canonical import canonical_text
from appliance.pricing import CartLine
from appliance.till import Till

CART = [CartLine("MUG-01", 1), CartLine("HONEY", 3), CartLine("CAFE", 2)]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=3000)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--dir", default=None, help="folder on the file system to test")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tillbox-bench-", dir=args.dir))
    till = Till.init(DataDir(root / "till"), "bench-1", demo=True)
    till.config.update("payment", card_offline_device_limit_minor=10**12)
    till.open_shift()
    sample = till.sell(CART, "cash")
    payload = canonical_text(sample.payload)

    base = sqlite3.connect(root / "baseline.db", isolation_level=None)
    base.execute("PRAGMA journal_mode=WAL")
    base.execute("PRAGMA synchronous=FULL")
    base.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL)")

    ours: list[float] = []
    bare: list[float] = []
    clock = time.perf_counter_ns
    while len(ours) < args.sales:
        for _ in range(args.block):
            t0 = clock()
            base.execute("BEGIN IMMEDIATE")
            base.execute("INSERT INTO events (payload) VALUES (?)", (payload,))
            base.execute("COMMIT")
            bare.append((clock() - t0) / 1e6)
        for _ in range(args.block):
            t0 = clock()
            till.sell(CART, "cash")
            ours.append((clock() - t0) / 1e6)

    report = till.verify()
    assert report.ok, report
    till.close()
    statvfs = os.statvfs(root)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus, python "
        f"{platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"fs block {statvfs.f_bsize} B, dir {root}"
    )
    for name, values in (("tillbox sale", ours), ("bare insert", bare)):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(
            f"{name:<13} n={len(values)} p50={p50:.3f} ms p99={p99:.3f} ms "
            f"rate={1000 / statistics.fmean(values):.0f}/s"
        )
    ratio = percentile(ours, 50) / percentile(bare, 50)
    for path in sorted(root.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    root.rmdir()
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
