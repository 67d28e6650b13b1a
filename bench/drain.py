"""Drain benchmark: a till with 100,000 events queued offline meets the region.

1. A till records ~100,000 sales while "offline" (real ``Till.sell`` payloads, copied
   with fresh ids in big transactions so the set-up takes seconds, not minutes).
2. A real mosquitto (free port, the shipped ACL) and ``tillbox edge serve`` (SQLite)
   come up; ``tillbox sync --once`` runs as its own process.
3. Measured: from the agent's CONNACK ("sync connected" in its log) until it has
   the edge's signed ack for every event ("sync drained"); the agent's peak RSS
   (``ru_maxrss`` of that process, from wait4).
4. Baseline in the same run: one QoS 1 publish per event, each waited for before the
   next (the broker's PUBACK only, no edge), on a subset of N_BASELINE events; its
   per-event rate is extrapolated (it would take minutes for all 100,000).
5. The set checker confirms every event is stored once, in order, ledgers recomputed.

Last line: ``events_per_s=N ratio=X.X agent_peak_rss_mb=M``.
Usage: ``.venv/bin/python bench/drain.py [--events N] [--baseline N] [--db URL]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from appliance.keys import generate, load_signing_key
from edge.broker import ADMIN_USER, LocalBroker
from systest.sync import (
    ADMIN_PASSWORD,
    CARTS,
    EDGE_PASSWORD,
    EDGE_USER,
    Region,
    agent_proc,
    bulk_sales,
    check_exactly_once,
    device_password,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    wait_for,
)

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?(sync connected|sync drained)")


def log_times(text: str) -> dict[str, float]:
    """First 'sync connected' and last 'sync drained' times from the agent's log."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        m = _STAMP.match(line)
        if m:
            t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if m.group(2) == "sync connected":
                found.setdefault("connected", t)
            else:
                found["drained"] = t
    return found


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def naive_baseline(port: int, lines: list[bytes]) -> float:
    """Events per second for one QoS 1 publish per event, each awaited before the next."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-naive", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(ADMIN_USER, ADMIN_PASSWORD)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise SystemExit("baseline: no CONNACK from the broker")
        start = time.perf_counter()
        for line in lines:
            info = client.publish("bench/naive", line, qos=1)
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                raise SystemExit("baseline: a publish was not acknowledged within 10 s")
        return len(lines) / (time.perf_counter() - start)
    finally:
        client.disconnect()
        client.loop_stop()


def stage_cpu(root: Path, till, region: Region, n: int = 10_000) -> tuple[float, float]:
    """CPU microseconds per event of each stage, measured in this process with
    process_time (so other load on the machine does not inflate it): the agent's
    read + seal (zlib, Ed25519) and the edge's verify + parse + store + ledgers."""
    from appliance.formats import wire
    from appliance.formats.chain import GENESIS_HASH
    from appliance.keys import load_signing_key as load_key
    from edge.ingest import Ingestor
    from edge.store import Store
    from sync_agent.reader import LogReader

    key = load_key(till.private_key_path)
    reader = LogReader(till.log_path)
    segments, prev, seq = [], GENESIS_HASH, 0
    c = time.process_time()
    while seq < n:
        lines = reader.lines(seq, 1000)
        data = wire.seal_segment(
            key,
            tenant="demo",
            device=reader.device_id,
            first_seq=seq + 1,
            last_seq=seq + len(lines),
            prev=prev,
            lines=lines,
        )
        segments.append(data)
        seq, prev = seq + len(lines), wire.segment_id(data)
    agent_us = (time.process_time() - c) * 1e6 / seq
    reader.close()
    db = f"sqlite:///{root / 'stage.db'}"
    enroll(db, till)
    store = Store.open(db)
    ingestor = Ingestor(store, region.key)
    c = time.process_time()
    for data in segments:
        assert ingestor.handle(wire.topic_seg("demo", reader.device_id), data).status == "stored"
    edge_us = (time.process_time() - c) * 1e6 / seq
    store.close()
    return agent_us, edge_us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=3000, help="events in the baseline")
    parser.add_argument("--db", help="edge database URL (default: SQLite in the temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--edge-args", nargs="*", default=[], help="extra `edge serve` options")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tillbox-drain-"))
    generate(root / "region.key", root / "region.pub")
    region = Region(load_signing_key(root / "region.key"), root / "region.key", root / "region.pub")
    till = make_till(
        root,
        "bench-1",
        region,
        segment_max_events=1000,
        segment_max_age_s=1,
        window=8,
        ack_timeout_s=30,
        keepalive_s=30,
    )
    t0 = time.perf_counter()
    last_seq = bulk_sales(till, max(len(CARTS), args.events - 3))  # init wrote 3 events
    print(f"till: {last_seq} events queued offline in {time.perf_counter() - t0:.1f} s")
    db = args.db or f"sqlite:///{root / 'edge.db'}"
    enroll(db, till)
    broker = LocalBroker(
        root / "broker",
        {"bench-1": device_password("bench-1")},
        workers={EDGE_USER: EDGE_PASSWORD},
        admin_password=ADMIN_PASSWORD,
    ).start()
    edge = edge_proc(root, db, broker.url, region, EDGE_USER, *args.edge_args).start()
    try:
        wait_for(lambda: edge_ready(edge), 30, "the edge to subscribe")
        agent = agent_proc(till, broker.url, "--once", "--timeout", "900").start()
        wall0 = time.perf_counter()
        _pid, status, usage = os.wait4(agent.proc.pid, 0)
        wall = time.perf_counter() - wall0
        agent.proc.returncode = os.waitstatus_to_exitcode(status)
        if agent.proc.returncode != 0:
            print(agent.log()[-3000:], file=sys.stderr)
            raise SystemExit(f"agent exited {agent.proc.returncode}")
        peak_mb = usage.ru_maxrss / 1024
        agent_cpu = usage.ru_utime + usage.ru_stime
        edge_cpu = proc_cpu_s(edge.proc.pid)
        times = log_times(agent.log())
        drain = times["drained"] - times["connected"]
        rate = last_seq / drain
        print(
            f"drain: {last_seq} events acked by the edge in {drain:.2f} s from CONNACK "
            f"({wall:.2f} s including process start) = {rate:,.0f} events/s; CPU used: "
            f"agent {agent_cpu:.1f} s, edge {edge_cpu:.1f} s (edge including its start-up)"
        )
        check_exactly_once(db, [till])
        print("check: every event stored exactly once, in order; ledgers match recomputations")
        sample = [line for _seq, line in zip(range(args.baseline), _lines(till), strict=False)]
        naive = naive_baseline(broker.port, sample)
        print(
            f"baseline: one awaited QoS 1 publish per event, {len(sample)} events measured: "
            f"{naive:,.0f} events/s (extrapolated: {last_seq / naive:.0f} s for all)"
        )
        agent_us, edge_us = stage_cpu(root, till, region)
        print(
            f"stage CPU per event (10,000 events, in-process): agent seal {agent_us:.1f} us, "
            f"edge ingest {edge_us:.1f} us; a core each would allow "
            f"{1e6 / max(agent_us, edge_us):,.0f} events/s"
        )
    finally:
        edge.stop()
        broker.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    print(f"events_per_s={rate:.0f} ratio={rate / naive:.1f} agent_peak_rss_mb={peak_mb:.1f}")
    return 0


def _lines(till) -> list[bytes]:
    from sync_agent.reader import LogReader

    reader = LogReader(till.log_path)
    try:
        return reader.lines(0, 10_000)
    finally:
        reader.close()


if __name__ == "__main__":
    raise SystemExit(main())
