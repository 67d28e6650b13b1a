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
5. The set checker confirms every event is stored once, in order, ledgers and rollups
   recomputed.
6. Rollups and telemetry on vs off: the same drain with the edge keeping no rollups and
   taking no health messages and the agent sending none (``bench/bare.py``, a switch
   no product command has), on a second till with the same events, alternating for
   ``--rounds``; the ratio of the throughputs (issue 13: within 10 %), and the edge's
   CPU per event in-process with and without rollups.

Last line: ``events_per_s=N ratio=X.X agent_peak_rss_mb=M rollups_telemetry_ratio=R``.
Usage: ``.venv/bin/python -P bench/drain.py [--events N] [--baseline N] [--db URL]
[--rounds N]`` (``--db`` names a PostgreSQL server's database; each run gets a fresh
SQLite file otherwise). ``-P``: Python must not put bench/ first on the path, where
bench/ui.py would shadow the ``ui`` package the config schema loads.
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
    Proc,
    Region,
    agent_proc,
    bulk_sales,
    check_exactly_once,
    device_password,
    edge_proc,
    edge_ready,
    enroll,
    make_till,
    seal_log,
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


BARE = str(Path(__file__).with_name("bare.py"))


def bare(proc: Proc) -> Proc:
    """The same process, started through bench/bare.py: no rollups, no telemetry."""
    proc.args = [sys.executable, "-P", BARE, *proc.args[1:]]
    return proc


def drain_once(root: Path, till, region: Region, db: str, broker, worker: str, off: bool, extra=()):
    """One drain of ``till`` into ``db`` by a fresh edge process; (events/s, drain s,
    wall s, agent peak RSS MB, agent CPU s, edge CPU s)."""
    enroll(db, till)
    edge = edge_proc(root, db, broker.url, region, worker, *extra)
    edge = (bare(edge) if off else edge).start()
    try:
        wait_for(lambda: edge_ready(edge), 30, "the edge to subscribe")
        agent = agent_proc(till, broker.url, "--once", "--timeout", "900")
        agent = (bare(agent) if off else agent).start()
        wall0 = time.perf_counter()
        _pid, status, usage = os.wait4(agent.proc.pid, 0)
        wall = time.perf_counter() - wall0
        agent.proc.returncode = os.waitstatus_to_exitcode(status)
        if agent.proc.returncode != 0:
            print(agent.log()[-3000:], file=sys.stderr)
            raise SystemExit(f"agent exited {agent.proc.returncode}")
        edge_cpu = proc_cpu_s(edge.proc.pid)
    finally:
        edge.stop()
    times = log_times(agent.log())
    drain = times["drained"] - times["connected"]
    last_seq = till_last_seq(till)
    return (
        last_seq / drain,
        drain,
        wall,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        edge_cpu,
    )


def till_last_seq(till) -> int:
    from sync_agent.reader import LogReader

    reader = LogReader(till.log_path)
    try:
        return reader.tail()[0]
    finally:
        reader.close()


def fresh_db(root: Path, name: str, pg_url: str | None) -> str:
    if not pg_url:
        return f"sqlite:///{root / (name + '.db')}"
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:  # a schema of its own per run
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options=-csearch_path%3D{name}"


def stage_cpu(root: Path, till, region: Region, n: int = 10_000) -> tuple[float, float, float]:
    """CPU microseconds per event of each stage, measured in this process with
    process_time (so other load on the machine does not inflate it): the agent's
    read + seal (zlib, Ed25519), the edge's verify + parse + store + ledgers + rollups,
    and the same edge without rollups."""
    from appliance.formats import wire
    from edge.ingest import Ingestor
    from edge.store import Store
    from sync_agent.reader import LogReader

    reader = LogReader(till.log_path)
    n = min(n, reader.tail()[0])  # a small --events run has fewer
    device = reader.device_id
    reader.close()
    c = time.process_time()
    segments = seal_log(till, size=1000, upto=n)
    agent_us = (time.process_time() - c) * 1e6 / n
    per_event = []
    for name, rollups in (("stage", True), ("stage-bare", False)):
        db = f"sqlite:///{root / (name + '.db')}"
        enroll(db, till)
        store = Store.open(db)
        ingestor = Ingestor(store, region.key, with_rollups=rollups)
        c = time.process_time()
        for data in segments:
            topic = wire.topic_seg("demo", device)
            assert ingestor.handle(topic, data).status == "stored"
        per_event.append((time.process_time() - c) * 1e6 / n)
        store.close()
    return agent_us, per_event[0], per_event[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=3000, help="events in the baseline")
    parser.add_argument("--db", help="a PostgreSQL database URL (default: SQLite files)")
    parser.add_argument("--rounds", type=int, default=1, help="off/on drains, alternating")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--edge-args", nargs="*", default=[], help="extra `edge serve` options")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tillbox-drain-"))
    generate(root / "region.key", root / "region.pub")
    region = Region(load_signing_key(root / "region.key"), root / "region.key", root / "region.pub")
    settings = dict(
        segment_max_events=1000, segment_max_age_s=1, window=8, ack_timeout_s=30, keepalive_s=30
    )
    # off/on in round 1, on/off in round 2, ...: neither always has the warmer machine
    runs = [(r, off) for r in range(args.rounds) for off in ((True, False), (False, True))[r % 2]]
    tills = {}
    t0 = time.perf_counter()
    for r, off in runs:
        name = f"bench-{'off' if off else 'on'}-{r}"
        tills[(r, off)] = make_till(root, name, region, **settings)
        last_seq = bulk_sales(tills[(r, off)], max(len(CARTS), args.events - 3))  # init wrote 3
    print(
        f"tills: {len(runs)} x {last_seq} events queued offline in {time.perf_counter() - t0:.1f} s"
    )
    # one worker identity for every run: it resumes its session. A worker of its own per
    # run would leave the stopped ones in the shared subscription, and the broker would
    # queue every other segment for them (a gap the agent cannot close)
    workers = {EDGE_USER: EDGE_PASSWORD}
    broker = LocalBroker(
        root / "broker",
        {
            t.load_config().device_id: device_password(t.load_config().device_id)
            for t in tills.values()
        },
        workers=workers,
        admin_password=ADMIN_PASSWORD,
    ).start()
    results: dict[bool, list] = {True: [], False: []}
    to_check = []
    try:
        for r, off in runs:
            till = tills[(r, off)]
            db = fresh_db(root, f"drain_{'off' if off else 'on'}_{r}", args.db)
            result = drain_once(root, till, region, db, broker, EDGE_USER, off, args.edge_args)
            results[off].append(result)
            rate, drain, wall, peak_mb, agent_cpu, edge_cpu = result
            print(
                f"drain ({'rollups+telemetry OFF' if off else 'rollups+telemetry on '}, round "
                f"{r + 1}): {last_seq} events acked in {drain:.2f} s from CONNACK ({wall:.2f} s "
                f"with process start) = {rate:,.0f} events/s; CPU: agent {agent_cpu:.1f} s, "
                f"edge {edge_cpu:.1f} s; agent peak RSS {peak_mb:.0f} MB"
            )
            if not off:
                to_check.append((db, till))
        # after every drain: the check grows this process, and each agent forked later
        # would report this process's memory as its own peak (ru_maxrss counts from fork)
        for db, till in to_check:
            check_exactly_once(db, [till])
            assert health_stored(db, till), "no health message reached the edge"
        print(
            f"check ({len(to_check)} drains with rollups and telemetry): every event stored "
            "exactly once, in order; ledgers and rollups match recomputations; health stored"
        )
        on_till = tills[(0, False)]
        sample = [line for _seq, line in zip(range(args.baseline), _lines(on_till), strict=False)]
        naive = naive_baseline(broker.port, sample)
        print(
            f"baseline: one awaited QoS 1 publish per event, {len(sample)} events measured: "
            f"{naive:,.0f} events/s (extrapolated: {last_seq / naive:.0f} s for all)"
        )
        agent_us, edge_us, bare_us = stage_cpu(root, on_till, region)
        print(
            f"stage CPU per event ({min(10_000, last_seq):,} events, in-process): "
            f"agent seal {agent_us:.1f} us, "
            f"edge ingest {edge_us:.1f} us ({bare_us:.1f} us without rollups: "
            f"x{edge_us / bare_us:.2f}); a core each would allow "
            f"{1e6 / max(agent_us, edge_us):,.0f} events/s"
        )
    finally:
        broker.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    on = sorted(x[0] for x in results[False])[len(results[False]) // 2]
    off = sorted(x[0] for x in results[True])[len(results[True]) // 2]
    peak_mb = max(x[3] for x in results[False])
    print(
        f"rollups and telemetry on vs off (median of {args.rounds}): {on:,.0f} / {off:,.0f} "
        f"events/s = {on / off:.3f}"
    )
    print(
        f"events_per_s={on:.0f} ratio={on / naive:.1f} agent_peak_rss_mb={peak_mb:.1f} "
        f"rollups_telemetry_ratio={on / off:.3f}"
    )
    return 0


def health_stored(db: str, till) -> bool:
    from edge.store import Store

    store = Store.open(db)
    try:
        return store.telemetry_latest(till.load_config().device_id) is not None
    finally:
        store.close()


def _lines(till) -> list[bytes]:
    from sync_agent.reader import LogReader

    reader = LogReader(till.log_path)
    try:
        return reader.lines(0, 10_000)
    finally:
        reader.close()


if __name__ == "__main__":
    raise SystemExit(main())
