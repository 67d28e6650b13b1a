"""SIGKILL a till process at random moments; check that no confirmed sale is lost.

The child records three-line cash sales in a loop and writes each sale's
sequence number to a pipe only after ``Till.sell`` returned (the moment the
kiosk would show "paid"). The parent kills it with SIGKILL after a random
delay, reopens the log and checks: every confirmed sale is there, the chain
verifies, the sequence has no gap, projections match a rebuild.

The suite runs 100 kills; for a longer soak run this file directly::

    .venv/bin/python tests/core/crash_harness.py --kills 5000
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance import projections
from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.till import Till

CART = [CartLine("MUG-01", 1), CartLine("HONEY", 2), CartLine("CAFE", 1)]


@dataclass
class Outcome:
    kills: int = 0
    confirmed: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _child(data_dir: DataDir, write_fd: int) -> None:
    try:
        with Till.open(data_dir) as till:
            while True:
                result = till.sell(CART, "cash")
                os.write(write_fd, f"{result.event.seq}\n".encode())
    finally:
        os._exit(1)


def _read_confirmed(read_fd: int) -> list[int]:
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    text = b"".join(chunks).decode()
    # a line cut by the kill was never fully reported: it does not count as confirmed
    return [int(line) for line in text.split("\n")[:-1] if line]


def check(data_dir: DataDir, confirmed: list[int]) -> list[str]:
    problems = []
    with Till.open(data_dir) as till:
        report = till.verify()
        if not report.ok:
            problems.append(f"chain broken at {report.first_bad_seq}: {report.reason}")
        sale_seqs = {
            r[0]
            for r in till.log.conn.execute("SELECT seq FROM events WHERE type = 'sale.completed'")
        }
        missing = [s for s in confirmed if s not in sale_seqs]
        if missing:
            problems.append(f"confirmed sales missing: {missing[:5]}")
        projected = till.log.conn.execute("SELECT count(*) FROM sales").fetchone()[0]
        if projected != len(sale_seqs):
            problems.append(f"projection counts {projected} sales, log has {len(sale_seqs)}")
    return problems


def run(root: Path, kills: int, seed: int = 1, max_delay_s: float = 0.04) -> Outcome:
    rng = random.Random(seed)
    data_dir = DataDir(root / "till")
    with Till.init(data_dir, "crash-1", demo=True) as till:
        till.open_shift()
    outcome = Outcome()
    for _ in range(kills):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns
            os.close(read_fd)
            _child(data_dir, write_fd)
        os.close(write_fd)
        time.sleep(rng.uniform(0.0, max_delay_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        outcome.confirmed.extend(_read_confirmed(read_fd))
        os.close(read_fd)
        outcome.kills += 1
        problems = check(data_dir, outcome.confirmed)
        if problems:
            outcome.problems.extend(problems)
            break
    with Till.open(data_dir) as till:
        if projections.snapshot(till.log.conn) != projections.rebuild(till.log.conn):
            outcome.problems.append("projections differ from a rebuild")
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run(Path(tmp), args.kills, args.seed)
    print(
        f"kills={outcome.kills} confirmed_sales={len(outcome.confirmed)} seed={args.seed} "
        f"problems={len(outcome.problems)}"
    )
    for problem in outcome.problems:
        print(f"  {problem}")
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
