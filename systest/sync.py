"""Helpers for tests and benchmarks of sync: tills with data, processes, the set checker.

Shipped in the package (like gpiozero's testing helpers) so ``tests/sync``,
``bench/drain.py`` and a field engineer's script share one implementation.
Importing this module needs no pytest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from nacl.signing import SigningKey

from appliance import events
from appliance.datadir import DataDir
from appliance.pricing import CartLine
from appliance.till import Till
from edge import admin, ledger
from edge.store import Store

TILLBOX = str(Path(sys.executable).with_name("tillbox"))
# One broker identity per ingest worker (its username is its client id).
WORKERS = ("tillbox-edge-1", "tillbox-edge-2")
EDGE_USER, EDGE_PASSWORD = WORKERS[0], "edge-secret"
PUBLISHER_USER, PUBLISHER_PASSWORD = "tillbox-publisher", "publisher-secret"
ADMIN_PASSWORD = "admin-secret"
DEVICES = ("t1", "t2", "t3")


def run_tillbox(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``tillbox ARGS`` as its own process, output captured as text."""
    return subprocess.run([TILLBOX, *args], capture_output=True, text=True, timeout=timeout)


def sync_once(folder: DataDir, broker_url: str, timeout_s: float) -> subprocess.CompletedProcess:
    """``tillbox sync --once``: drain ``folder``'s log to the broker, or give up after timeout_s."""
    return run_tillbox(
        "sync",
        "--data-dir",
        str(folder.root),
        "--broker",
        broker_url,
        "--once",
        "--timeout",
        f"{timeout_s:g}",
        timeout=timeout_s + 30,
    )


def device_password(device: str) -> str:
    return f"pw-{device}"


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 15.0,
    what: str = "condition",
    interval: float = 0.05,
) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test (never hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Region:
    key: SigningKey
    key_path: Path
    pub_path: Path

    @property
    def pub_hex(self) -> str:
        return self.key.verify_key.encode().hex()


# -- tills --------------------------------------------------------------------------------
SYNC_TEST_SETTINGS = {
    "segment_max_events": 50,
    "segment_max_age_s": 0.2,
    "window": 4,
    "ack_timeout_s": 3.0,
    "keepalive_s": 2,
    "connect_timeout_s": 2.0,
    "backoff_min_s": 0.1,
    "backoff_max_s": 1.0,
}


def make_till(
    root: Path,
    device: str,
    region: Region,
    tenant: str = "demo",
    card_limit_minor: int = 10**12,
    **sync: object,
) -> DataDir:
    folder = DataDir(root / device)
    with Till.init(folder, device, demo=True, tenant=tenant) as till:
        till.open_shift()
    config = folder.load_config()
    settings = {
        **SYNC_TEST_SETTINGS,
        "username": device,
        "password": device_password(device),
        "region_public_key": region.pub_hex,
        **sync,
    }
    config.update("sync", **settings)
    # Test volumes of card sales would hit the offline card cap (a real rule) at once.
    config.update("payment", card_offline_device_limit_minor=card_limit_minor)
    folder.config_path.write_text(tomli_w.dumps(config.data))
    return folder


CARTS = [
    [CartLine("MUG-01", 1)],
    [CartLine("HONEY", 3), CartLine("CAFE", 2)],
    [CartLine("TEE-M", 1), CartLine("POSTCARD", 4)],
    [CartLine("BRATW", 2)],
]


def sell(
    folder: DataDir,
    n: int,
    *,
    refund_every: int = 7,
    card_every: int = 3,
    fast: bool = True,
    idempotency_key: str | None = None,
) -> int:
    """Record ``n`` sales (and a refund every ``refund_every``); return the log's last seq."""
    with Till.open(folder) as till:
        if fast:  # test data only: the shipped till always commits with synchronous=FULL
            till.log.conn.execute("PRAGMA synchronous=OFF")
        for i in range(n):
            sale = till.sell(
                CARTS[i % len(CARTS)],
                "card" if card_every and i % card_every == 0 else "cash",
                idempotency_key=idempotency_key,
            )
            if refund_every and i % refund_every == refund_every - 1:
                till.refund(sale.payload["sale_id"])
        return till.log.last()[0]


def till_events(folder: DataDir) -> list[tuple[int, str]]:
    with Till.open(folder) as till:
        return [(e.seq, e.hash) for e in till.log.events()]


# -- processes ----------------------------------------------------------------------------
class Proc:
    def __init__(self, args: list[str], log_path: Path, env: dict | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc else None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def edge_proc(
    tmp_path: Path,
    db: str,
    broker_url: str,
    region: Region,
    worker: str = EDGE_USER,
    *extra: str,
) -> Proc:
    pw = tmp_path / "edge-password"
    pw.write_text(EDGE_PASSWORD)
    return Proc(
        [
            TILLBOX,
            "edge",
            "serve",
            "--db",
            db,
            "--broker",
            broker_url,
            "--key",
            str(region.key_path),
            "--password-file",
            str(pw),
            "--username",
            worker,
            *extra,
        ],
        tmp_path / f"edge-{worker}.log",
    )


def agent_proc(folder: DataDir, broker_url: str, *extra: str) -> Proc:
    return Proc(
        [TILLBOX, "sync", "--data-dir", str(folder.root), "--broker", broker_url, *extra],
        folder.root / "agent.log",
    )


def enroll(db: str, *folders: DataDir) -> None:
    from appliance.keys import load_verify_key

    store = Store.open(db)
    try:
        for folder in folders:
            config = folder.load_config()
            admin.enroll(
                store,
                config.device_id,
                load_verify_key(folder.public_key_path),
                config.section("device")["tenant"],
            )
    finally:
        store.close()


def edge_ready(proc: Proc) -> bool:
    return "edge subscribed" in proc.log()


# -- the checker --------------------------------------------------------------------------
def check_exactly_once(db: str, folders: list[DataDir], intents: bool = True) -> dict:
    """Jepsen-style set check: every event each till confirmed is stored once, in order,
    with the same hash; and the ledgers equal two recomputations (from the edge's stored
    events and, independently, from the tills' own logs). With ``intents`` (every till
    of the tenant among ``folders``): also :func:`systest.intents.check_intents`, every
    refund linked to its sale and every flag the oracle's."""
    store = Store.open(db)
    try:
        stats = admin.stats(store)
        by_device = {d["device_id"]: d for d in stats["devices"]}
        for folder in folders:
            device = folder.load_config().device_id
            confirmed = till_events(folder)
            stored = admin.stored_events(store, device)
            missing = sorted(set(confirmed) - set(stored))
            extra = sorted(set(stored) - set(confirmed))
            assert not missing, f"{device}: {len(missing)} confirmed events lost, {missing[:3]}"
            assert not extra, f"{device}: {len(extra)} events stored that the till lacks"
            assert stored == confirmed, f"{device}: stored out of order or twice"
            assert by_device[device]["events_stored"] == len(confirmed)
            assert by_device[device]["last_seq"] == confirmed[-1][0]
        report = admin.check(store)
        assert report["ok"], report["problems"]
        # Independent: fold the tills' own logs (device by device) with no edge data at all.
        rows = []
        for folder in folders:
            config = folder.load_config()
            with Till.open(folder) as till:
                rows += [
                    (config.section("device")["tenant"], config.device_id, e.seq, e.type, e.payload)
                    for e in till.log.events()
                    if e.type in ledger.TYPES
                ]
        fresh = ledger.recompute(rows)
        tax = {
            (t, p, r): [int(x) for x in rest]
            for t, p, r, *rest in store.all(
                "SELECT tenant, tax_profile, rate, sales, gross_minor, tax_minor, net_minor "
                "FROM tax_ledger"
            )
        }
        assert tax == fresh.tax
        adjustments = store.all("SELECT COUNT(*) FROM stock_adjustments")[0][0]
        if not adjustments:
            stock = {(t, s): int(q) for t, s, q in store.all("SELECT tenant, sku, qty FROM stock")}
            assert stock == {k: v for k, v in fresh.stock.items()}
        if intents:
            from systest.intents import check_intents

            check_intents(db, folders)
        return stats
    finally:
        store.close()


def read_state(folder: DataDir) -> dict:
    return json.loads((folder.sync_dir / "state.json").read_text())


def seal_log(
    folder: DataDir, size: int = 50, tenant: str = "demo", upto: int | None = None
) -> list[bytes]:
    """Seal a till's whole log (or its first ``upto`` events) into chained segments of
    ``size`` events, as the agent would (for tests and bench/drain.py)."""
    from appliance.formats import wire
    from appliance.formats.chain import GENESIS_HASH
    from appliance.keys import load_signing_key
    from sync_agent.reader import LogReader

    key = load_signing_key(folder.private_key_path)
    reader = LogReader(folder.log_path)
    try:
        out, seq, prev = [], 0, GENESIS_HASH
        while upto is None or seq < upto:
            lines = reader.lines(seq, size if upto is None else min(size, upto - seq))
            if not lines:
                return out
            data = wire.seal_segment(
                key,
                tenant=tenant,
                device=reader.device_id,
                first_seq=seq + 1,
                last_seq=seq + len(lines),
                prev=prev,
                lines=lines,
            )
            out.append(data)
            seq, prev = seq + len(lines), wire.segment_id(data)
        return out
    finally:
        reader.close()


def sign_raw(
    folder: DataDir,
    raw_lines: list[bytes],
    first_seq: int,
    prev: str,
    tenant: str = "demo",
    device: str | None = None,
) -> bytes:
    """A validly signed segment around arbitrary bytes (for bad-input tests)."""
    from appliance.formats import wire
    from appliance.keys import load_signing_key

    key = load_signing_key(folder.private_key_path)
    return wire.seal_segment(
        key,
        tenant=tenant,
        device=device or folder.load_config().device_id,
        first_seq=first_seq,
        last_seq=first_seq + len(raw_lines) - 1,
        prev=prev,
        lines=raw_lines,
    )


def bulk_sales(folder: DataDir, n: int, batch: int = 5000) -> int:
    """Append ``n`` sales fast (benchmarks): real payloads from ``Till.sell``, copied with
    fresh ids and receipt numbers, many per transaction. Returns the log's last seq."""
    import copy
    import uuid

    with Till.open(folder) as till:
        till.log.conn.execute("PRAGMA synchronous=OFF")
        templates = [till.sell(cart, "cash").payload for cart in CARTS]
        receipt = max(t["receipt_no"] for t in templates)
        left = n - len(templates)
        while left > 0:
            with till.log.transaction() as tx:
                for i in range(min(batch, left)):
                    payload = copy.deepcopy(templates[i % len(templates)])
                    receipt += 1
                    payload.update(
                        sale_id=str(uuid.uuid4()),
                        idempotency_key=str(uuid.uuid4()),
                        receipt_no=receipt,
                    )
                    tx.append(events.SALE_COMPLETED, payload)
            left -= batch
        return till.log.last()[0]


def retained_for(port: int, device: str, topic: str, timeout: float = 20.0) -> bytes:
    """What the till ``device`` receives on subscribing to ``topic`` at the broker on
    ``port`` with its own login: the retained message (AssertionError when none comes)."""
    import threading

    import paho.mqtt.client as mqtt

    got, payload = threading.Event(), []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
    client.username_pw_set(device, device_password(device))
    client.on_connect = lambda c, _u, _f, _reason, _p: c.subscribe(topic, qos=1)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        payload.append(msg.payload)
        got.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        assert got.wait(timeout), f"nothing retained on {topic} for {device}"
    finally:
        client.disconnect()
        client.loop_stop()
    return payload[0]
