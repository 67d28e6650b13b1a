"""Region console benchmark: every page's latency over a month of a busy region, on PostgreSQL.

1. **Load.** ``--events`` (1,000,000) events from ``--tills`` (200) tills of ``--tenants``
   (10) merchants over ``--days`` (30) days into a fresh database of a PostgreSQL of its own
   (``systest.postgres.LocalPostgres``: its own cluster on a free port), through the real
   ingest path: each till's log holds real ``Till.sell`` / ``Till.refund`` /
   ``receipt.printed`` payloads (made once per tax profile by real tills, then copied with
   fresh ids, receipt numbers, events and wall clocks spread over the trading hours of each
   day: the :func:`systest.sync.bulk_sales` way), the log is sealed into signed segments
   of ``--segment`` events (10,000: the agent's largest) and the edge's ``Ingestor``
   verifies and stores them with its ledgers and rollups, one transaction per segment.
   The mix: ~70 % sales (three tax profiles in three currencies, cash and card, promo
   codes on some), ~26 % printed receipts, ~4 % refunds; weekends at fairs (the events a
   promoter sees), weekdays without. Then ``--health`` signed health messages per till
   through ``edge.telemetry.HealthIngestor`` (a few silent tills, low paper, queued
   events), the console's receipt index caught up (``console.receipts.catch_up``), and
   ``ANALYZE`` (what autovacuum does on its own after such a load). Printed: the rates.
2. **Measure.** ``tillbox edge web`` (uvicorn, its own process) on that database; one
   httpx client per role, signed in through ``POST /api/v1/session``. Every page and its
   ``/api/v1/`` twin is requested ``--requests`` (50) times, round-robin over all pages
   (so the machine's load hits every page alike), after 3 warm-up requests each; every
   answer must be 200. The tax reporter's CSV and PDF exports of the month are measured
   the same way, as the browser downloads them (every one audited).
3. **Baseline in the same run:** ``GET /api/v1/session`` (session lookup, no data), whose
   p95 each page's p95 is divided by ("ratio to baseline").

4. **Older regions** (``--age-days N``): the rollups the pages read grow with the region's
   age, not only its size. The loaded month's rollup rows are copied, each copy shifted a
   month further back (its fairs renamed), up to N days, and every page is measured again.

Goals (issue 13): every page p95 <= 300 ms; a month's tax export <= 2 s.
Last line: ``baseline_p95_ms=B worst_p95_ms=W worst=PAGE pages_over_goal=N
tax_export_month_s=T load_events_per_s=L`` (and ``aged_...`` the same after aging).

Usage: ``.venv/bin/python -P bench/console.py [--events N] [--tills N] [--days N]
[--tenants N] [--requests N] [--age-days N] [--db URL] [--dir DIR] [--keep]``
(``make bench-console``). ``-P``: Python must not put bench/ first on the path, where this
file would shadow the ``console`` package (and bench/ui.py the ``ui`` package).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import logging
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, before bench/

import appliance.log
from appliance import events as ev
from appliance.datadir import DataDir
from appliance.errors import RuleViolation
from appliance.formats import telemetry, wire
from appliance.ids import new_id
from appliance.keys import generate, load_signing_key, load_verify_key
from appliance.pricing import CartLine
from appliance.till import Till
from edge import admin
from edge.ingest import Ingestor
from edge.store import Store
from edge.telemetry import HealthIngestor
from systest.console import health_of
from systest.postgres import LocalPostgres
from systest.sync import Region, make_till, seal_log
from systest.tradeworld import set_profile

ROW_COUNTS = (
    "events", "rollup_sales", "rollup_tax", "rollup_items", "rollup_promos",
    "telemetry_history", "console_receipts", "stock_flags",
)  # fmt: skip
GOAL_P95_MS = 300.0
GOAL_EXPORT_S = 2.0
PROFILES = ("eu-market", "ch-festival", "us-fair")  # the demo catalog's, three currencies
PROFILE_WEIGHTS = (6, 3, 1)
OPEN_H, CLOSE_H = 9, 19  # trading hours, UTC
P_REFUND, P_PRINTED = 0.04, 0.36  # of the events after a sale; the rest are sales
PASSWORD = "bench horse battery staple"
CARTS = [
    [CartLine("MUG-01", 1)],
    [CartLine("HONEY", 3), CartLine("CAFE", 2)],
    [CartLine("TEE-M", 1), CartLine("POSTCARD", 4)],
    [CartLine("BRATW", 2)],
    [CartLine("CAFE", 1)],
    [CartLine("JAM-FR", 2), CartLine("HONEY", 1)],
    [CartLine("TEE-L", 1), CartLine("MUG-01", 2), CartLine("POSTCARD", 1)],
    [CartLine("KEYRING-ENG", 1)],
]


# -- templates: real payloads from real tills --------------------------------------------
@dataclass
class Templates:
    """Per tax profile: sale payloads, the full refund of each, a receipt.printed payload."""

    sales: dict[str, list[dict]] = field(default_factory=dict)
    refunds: dict[str, list[dict | None]] = field(default_factory=dict)
    printed: dict[str, dict] = field(default_factory=dict)


def make_templates(root: Path, region: Region) -> Templates:
    from appliance.devices import open_devices
    from appliance.services.printing import default_qr_for, print_sale_receipt

    out = Templates()
    for profile in PROFILES:
        folder = make_till(root, f"tpl-{profile}", region, tenant="tpl")
        set_profile(folder, profile)
        sales, refunds = [], []
        with Till.open(folder) as till:
            for cart in CARTS:
                for method in ("cash", "card"):
                    for promo in (None, None, None, "MARKET10", "FIVEOFF"):
                        try:
                            sale = till.sell(cart, method, promo_code=promo)
                        except RuleViolation:
                            continue  # FIVEOFF on a cart under 5.00
                        sales.append(sale)
            for s in sales:
                try:
                    refunds.append(till.refund(s.payload["sale_id"]).event.payload)
                except RuleViolation:
                    refunds.append(None)  # personalised (engraved) lines are not refundable
            devices = open_devices(till.config, folder)
            try:
                outcome = print_sale_receipt(
                    till, sales[0].event, devices.printer, default_qr_for(till, sales[0].event)
                )
            finally:
                devices.close()
            assert outcome.ok and outcome.event_seq is not None, outcome
            printed = till.log.event(outcome.event_seq)
            assert printed is not None and printed.type == ev.RECEIPT_PRINTED
            assert "code" in printed.payload, printed.payload
        out.sales[profile] = [s.payload for s in sales]
        out.refunds[profile] = refunds
        out.printed[profile] = printed.payload
    return out


# -- the region's month ------------------------------------------------------------------
@dataclass
class Plan:
    tills: int
    tenants: int
    days: list[dt.date]
    events: int
    segment: int
    seed: int = 13

    def device(self, i: int) -> str:
        return f"till-{i:03d}"

    def tenant(self, i: int) -> str:
        return f"merchant-{i * self.tenants // self.tills:02d}"

    def profile(self, i: int) -> str:
        return random.Random(i).choices(PROFILES, PROFILE_WEIGHTS)[0]

    def event_on(self, i: int, day: dt.date) -> str:
        """Weekends: one of three fairs; weekdays: no event."""
        if day.weekday() < 4:
            return ""
        year, week, _ = day.isocalendar()
        return f"fair-{year}w{week:02d}-{'abc'[i % 3]}"

    def budget(self, i: int) -> int:
        return self.events // self.tills + (1 if i < self.events % self.tills else 0)


def _ms(day: dt.date, seconds: float) -> int:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    return int((start + seconds) * 1000)


def _code(rng: random.Random) -> str:
    text = base64.b32encode(rng.randbytes(7)).decode()[:10]
    return f"{text[:5]}-{text[5:]}"


class _Clock:
    """Stands in for ``time`` in appliance.log: the wall clock a test sets, real monotonic."""

    def __init__(self) -> None:
        self.ns = 0
        self.monotonic_ns = time.monotonic_ns

    def time_ns(self) -> int:
        return self.ns


def write_till(folder: DataDir, plan: Plan, i: int, tpl: Templates, mix: Counter) -> int:
    """Append the till's month to its log (counting each type in ``mix``); its last seq."""
    rng = random.Random(plan.seed * 100_003 + i)
    profile = plan.profile(i)
    sales_tpl, refunds_tpl = tpl.sales[profile], tpl.refunds[profile]
    printed_tpl = tpl.printed[profile]
    clock = _Clock()
    real_time = appliance.log.time
    with Till.open(folder) as till:
        till.log.conn.execute("PRAGMA synchronous=OFF")  # test data only
        till.log.projector = None  # the till's own projections are not what is measured
        first_seq = till.log.last()[0]
        mix["other (the till's own start-up)"] += first_seq
        budget = plan.budget(i) - first_seq
        weights = [1.6 if d.weekday() >= 4 else 1.0 for d in plan.days]
        scale = budget / sum(weights)
        per_day = [int(w * scale) for w in weights]
        per_day[-1] += budget - sum(per_day)
        receipt = max(t["receipt_no"] for t in sales_tpl)
        recent: list[tuple[int, str, int]] = []  # (template, sale_id, receipt_no), unrefunded
        appliance.log.time = clock  # type: ignore[assignment]
        try:
            with till.log.transaction() as tx:
                for day, n in zip(plan.days, per_day, strict=True):
                    event_id = plan.event_on(i, day)
                    span = (CLOSE_H - OPEN_H) * 3600
                    times = sorted(OPEN_H * 3600 + rng.random() * span for _ in range(n))
                    last_sale: tuple[int, str, int] | None = None
                    for t in times:
                        clock.ns = _ms(day, t) * 1_000_000
                        r = rng.random()
                        if r < P_REFUND and recent:
                            j, sale_id, sale_no = recent.pop(rng.randrange(len(recent)))
                            receipt += 1
                            refund = dict(refunds_tpl[j] or {})
                            refund.update(
                                refund_id=new_id(),
                                sale_id=sale_id,
                                sale_receipt_no=sale_no,
                                receipt_no=receipt,
                                event_id=event_id,
                            )
                            tx.append(ev.REFUND_ISSUED, refund)
                            mix[ev.REFUND_ISSUED] += 1
                        elif r < P_REFUND + P_PRINTED and last_sale is not None:
                            printed = dict(printed_tpl)
                            printed.update(
                                receipt_no=last_sale[2], sale_id=last_sale[1], code=_code(rng)
                            )
                            tx.append(ev.RECEIPT_PRINTED, printed)
                            mix[ev.RECEIPT_PRINTED] += 1
                            last_sale = None
                        else:
                            j = rng.randrange(len(sales_tpl))
                            receipt += 1
                            sale = dict(sales_tpl[j])
                            sale.update(
                                sale_id=new_id(),
                                idempotency_key=new_id(),
                                receipt_no=receipt,
                                event_id=event_id,
                            )
                            tx.append(ev.SALE_COMPLETED, sale)
                            mix[ev.SALE_COMPLETED] += 1
                            last_sale = (j, sale["sale_id"], receipt)
                            if refunds_tpl[j] is not None:
                                recent.append(last_sale)
                            if len(recent) > 200:
                                recent.pop(0)
        finally:
            appliance.log.time = real_time
        return till.log.last()[0]


@dataclass
class Loaded:
    folders: list[DataDir]
    events: int
    gen_s: float
    seal_s: float
    ingest_s: float
    health: int
    health_s: float
    index_events: int
    index_s: float
    analyze_s: float


def load(root: Path, url: str, region: Region, plan: Plan, health_per_till: int) -> Loaded:
    tpl = make_templates(root / "templates", region)
    gen_s = seal_s = ingest_s = 0.0
    folders: list[DataDir] = []
    lasts: list[int] = []
    total = 0
    mix: Counter = Counter()
    store = Store.open(url)
    try:
        ingestor = Ingestor(store, region.key)
        tenants = sorted({plan.tenant(i) for i in range(plan.tills)})
        for tenant in tenants:  # counted stock, so busy SKUs go below zero and are flagged
            admin.stock_set(store, tenant, "HONEY", 500, "opening count")
            admin.stock_set(store, tenant, "TEE-M", 300, "opening count")
        for i in range(plan.tills):
            t0 = time.perf_counter()
            folder = make_till(root / "tills", plan.device(i), region, tenant=plan.tenant(i))
            set_profile(folder, plan.profile(i))
            last = write_till(folder, plan, i, tpl, mix)
            t1 = time.perf_counter()
            admin.enroll(
                store, plan.device(i), load_verify_key(folder.public_key_path), plan.tenant(i)
            )
            admin.set_profile(store, plan.device(i), f"stall-{i // 2:03d}", f"till {i}")
            segments = seal_log(folder, size=plan.segment, tenant=plan.tenant(i))
            t2 = time.perf_counter()
            topic = wire.topic_seg(plan.tenant(i), plan.device(i))
            for data in segments:
                out = ingestor.handle(topic, data)
                assert out.status == "stored", out
            t3 = time.perf_counter()
            gen_s, seal_s, ingest_s = gen_s + t1 - t0, seal_s + t2 - t1, ingest_s + t3 - t2
            folders.append(folder)
            lasts.append(last)
            total += last
            if (i + 1) % max(1, plan.tills // 10) == 0 or i + 1 == plan.tills:
                print(
                    f"  loaded {i + 1}/{plan.tills} tills, {total:,} events: "
                    f"{total / ingest_s:,.0f} events/s through ingest "
                    f"(load avg {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        t0 = time.perf_counter()
        sent = send_health(store, folders, lasts, plan, health_per_till)
        health_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        indexed = catch_up_index(store)
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.execute("ANALYZE")
        analyze_s = time.perf_counter() - t0
        print("  mix: " + ", ".join(f"{k} {n / total:.1%}" for k, n in mix.most_common()))
        sizes = {t: store.one(f"SELECT COUNT(*) FROM {t}")[0] for t in ROW_COUNTS}
        print("  rows: " + ", ".join(f"{t} {int(n):,}" for t, n in sizes.items()))
    finally:
        store.close()
    return Loaded(
        folders, total, gen_s, seal_s, ingest_s, sent, health_s, indexed, index_s, analyze_s
    )


def send_health(
    store: Store, folders: list[DataDir], lasts: list[int], plan: Plan, per_till: int
) -> int:
    """``per_till`` signed health messages per till, 5 minutes apart, the newest a minute ago
    (every 20th till silent for 3 hours; some with low or no paper, events queued, on
    battery, a failed self-test check)."""
    ingestor = HealthIngestor(store)
    now = time.time_ns() // 1_000_000
    sent = 0
    for i, folder in enumerate(folders):
        rng = random.Random(plan.seed + i)
        newest = now - (3 * 3600_000 if i % 20 == 7 else 60_000)
        base = health_of(folder, newest, acked_seq=lasts[i])
        key = load_signing_key(folder.private_key_path)
        warn = "warn" if i % 13 == 5 else "pass"
        selftest = telemetry.Selftest(
            newest - 3600_000,
            True,
            (("printer", "pass"), ("clock", "pass"), ("disk", warn), ("keys", "pass")),
        )
        for k in range(per_till):
            sent_ms = newest - (per_till - 1 - k) * 300_000
            health = dataclasses.replace(
                base,
                sent_ms=sent_ms,
                selftest=selftest,
                printer_paper=("low" if i % 17 == 3 else "out" if i % 29 == 11 else "ok"),
                queued_events=rng.choice((0, 0, 0, 12, 340)),
                drain_estimate_s=0,
                power_source="battery" if i % 23 == 9 else "mains",
                battery_pct=64 if i % 23 == 9 else None,
                card_exposure_minor=rng.randrange(0, 40_000),
            )
            data = telemetry.seal_health(key, health)
            received = sent_ms + rng.randrange(-400, 900)  # the till's clock is off a little
            out = ingestor.handle(wire.topic_health(health.tenant, health.device), data, received)
            assert out.status == "stored", out
            sent += 1
    return sent


def catch_up_index(store: Store) -> int:
    """The console's receipt index, caught up as its background thread would."""
    from console import receipts, tables

    tables.ensure_schema(store)
    total = 0
    while True:
        read = receipts.catch_up(store, time.time_ns() // 1_000_000)
        total += read
        if not read:
            return total


# -- measuring ---------------------------------------------------------------------------
@dataclass
class Probe:
    name: str
    role: str
    run: Callable[[], None]
    times: list[float] = field(default_factory=list)
    cpu_ms: tuple[float, float] = (float("nan"), float("nan"))  # (console, PostgreSQL)


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank: the smallest value with at least pct % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * pct / 100) - 1)]


class Role:
    """An httpx client signed in as one user (the session cookie sent by hand: the
    console's cookie is Secure, and the bench talks plain HTTP on loopback)."""

    def __init__(self, base_url: str, name: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url, timeout=120)
        r = self.client.post("/api/v1/session", json={"name": name, "password": PASSWORD})
        if r.status_code != 200:
            raise SystemExit(f"sign-in as {name}: {r.status_code} {r.text[:200]}")
        token = r.cookies.get("tillbox_session")
        self.client.cookies.clear()
        self.client.headers["Cookie"] = f"tillbox_session={token}"

    def getter(self, path: str) -> Callable[[], None]:
        def get() -> None:
            r = self.client.get(path)
            if r.status_code != 200:
                raise SystemExit(f"GET {path}: {r.status_code} {r.text[:300]}")

        return get


USERS = {
    "ada": ("admin", None),
    "mia": ("merchant", "merchant-00"),
    "tess": ("technician", None),
    "tom": ("tax", None),
    "pia": ("promoter", None),
    "ivy": ("inspector", None),
}


def add_users(url: str, promoter_events: tuple[str, ...]) -> None:
    from console import auth, tables

    store = Store.open(url)
    try:
        tables.ensure_schema(store)
        for name, (role, tenant) in USERS.items():
            events = promoter_events if role in ("promoter", "inspector") else ()
            auth.add_user(store, name, role, PASSWORD, tenant, events, ())
    finally:
        store.close()


def sample_receipts(url: str, tenant: str) -> tuple[int, str, str, int]:
    """A receipt number every till of the tenant has, a short code, and one receipt."""
    store = Store.open(url)
    try:
        (number,) = store.one(
            "SELECT MIN(receipt_no) + 500 FROM console_receipts WHERE tenant = ?", (tenant,)
        )
        (code,) = store.one(
            "SELECT MIN(code) FROM console_receipts WHERE tenant = ? AND code <> ''", (tenant,)
        )
        device, no = store.one(
            "SELECT device_id, receipt_no FROM console_receipts WHERE tenant = ? AND kind = 'S' "
            "ORDER BY receipt_no DESC, device_id LIMIT 1",
            (tenant,),
        )
        return int(number), code, device, int(no)
    finally:
        store.close()


def probes(base_url: str, url: str, plan: Plan) -> tuple[list[Probe], Probe]:
    roles = {name: Role(base_url, name) for name in USERS}
    mia, ada = roles["mia"], roles["ada"]
    first, last = plan.days[0].isoformat(), plan.days[-1].isoformat()
    month = f"from={first}&to={last}"
    number, code, device, receipt_no = sample_receipts(url, "merchant-00")
    out: list[Probe] = []

    def both(name: str, role: str, path: str, query: str = "") -> None:
        client = roles[role]
        q = f"?{query}" if query else ""
        out.append(Probe(f"{name} (page)", role, client.getter(f"{path}{q}")))
        out.append(Probe(f"{name} (api)", role, client.getter(f"/api/v1{path}{q}")))

    both("sales, last 7 days by till", "mia", "/sales")
    both("sales, month by day", "mia", "/sales", f"{month}&group=day")
    both("sales, month by stall", "mia", "/sales", f"{month}&group=stall")
    both("sales, month by event", "mia", "/sales", f"{month}&group=event")
    both("sales, month by hour", "mia", "/sales", f"{month}&group=hour")
    both("sales, month, every tenant", "ada", "/sales", f"{month}&group=till")
    both("refunds, month", "mia", "/refunds", month)
    both("stock", "mia", "/stock")
    both("exposure", "mia", "/exposure")
    both("receipts by number", "mia", "/receipts", f"q={number}")
    both("receipts by code", "mia", "/receipts", f"q={code}")
    both("one receipt", "mia", f"/receipts/{device}/{receipt_no}")
    out.append(Probe("verify (page)", "mia", mia.getter("/verify")))
    both("fleet", "tess", "/fleet")
    both("exposure, every tenant", "tess", "/exposure")
    out.append(Probe("devices (page)", "ada", ada.getter("/admin/devices")))
    out.append(Probe("devices (api)", "ada", ada.getter("/api/v1/devices")))
    out.append(Probe("users (page)", "ada", ada.getter("/admin/users")))
    out.append(Probe("tenants (page)", "ada", ada.getter("/admin/tenants")))
    out.append(Probe("region key (page)", "ada", ada.getter("/admin/region")))
    out.append(Probe("audit log (page)", "ada", ada.getter("/admin/audit")))
    out.append(Probe("audit log (api)", "ada", ada.getter("/api/v1/audit")))
    out += report_probes(roles, plan)
    baseline = Probe("baseline: GET /api/v1/session", "mia", mia.getter("/api/v1/session"))
    return out, baseline


def report_probes(roles: dict[str, Role], plan: Plan) -> list[Probe]:
    """The tax reporter's, the promoter's and the inspector's pages, with the tax
    exports a tax reporter downloads (each export is audited, as in use)."""
    first, last = plan.days[0].isoformat(), plan.days[-1].isoformat()
    month = f"tenant=merchant-00&from={first}&to={last}"
    fair = plan.event_on(0, _last_weekend(plan.days))
    tom, pia, ivy = roles["tom"], roles["pia"], roles["ivy"]
    device = ivy.client.get("/api/v1/inspector/devices").json()["devices"][0]["device_id"]
    return [
        Probe("tax ledger, month (page)", "tom", tom.getter(f"/tax?{month}")),
        Probe("tax ledger, month (api)", "tom", tom.getter(f"/api/v1/tax?{month}")),
        Probe("tax export csv, month", "tom", tom.getter(f"/api/v1/tax/export.csv?{month}")),
        Probe("tax export pdf, month", "tom", tom.getter(f"/api/v1/tax/export.pdf?{month}")),
        Probe("tax filings (page)", "tom", tom.getter("/tax/filings")),
        Probe("promoter events (page)", "pia", pia.getter("/promoter")),
        Probe("promoter event (page)", "pia", pia.getter(f"/promoter/events/{fair}")),
        Probe("promoter event (api)", "pia", pia.getter(f"/api/v1/promoter/events/{fair}")),
        Probe("inspector tills (page)", "ivy", ivy.getter("/inspector")),
        Probe("inspector till (page)", "ivy", ivy.getter(f"/inspector/devices/{device}")),
        Probe("inspector till (api)", "ivy", ivy.getter(f"/api/v1/inspector/devices/{device}")),
    ]


def _last_weekend(days: list[dt.date]) -> dt.date:
    return next(d for d in reversed(days) if d.weekday() >= 4)


def measure(every: list[Probe], rounds: int) -> None:
    """``rounds`` timed runs of each probe, round-robin in a shuffled order per round (the
    machine's load then hits every page alike), after 3 warm-up runs each."""
    for p in every:  # warm-up: the console's connection pool, PostgreSQL's caches
        for _ in range(3):
            p.run()
    order = list(range(len(every)))
    rng = random.Random(7)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            p = every[k]
            t0 = time.perf_counter()
            p.run()
            p.times.append((time.perf_counter() - t0) * 1000)


def _cpu_s(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process (with its reaped children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it exited
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s(postmaster: int) -> float:
    """The cluster's CPU seconds: the postmaster, the backends it forked (alive), and the
    ones it reaped."""
    total = _cpu_s(postmaster, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_pass(every: list[Probe], console_pid: int, postmaster: int | None, n: int) -> None:
    """CPU milliseconds per request of the console process and of PostgreSQL, ``n``
    requests per probe: what the load on the
    machine does not inflate (it counts CPU used, not time spent waiting for a core)."""
    for p in every:
        con0 = _cpu_s(console_pid)
        pg0 = _postgres_cpu_s(postmaster) if postmaster else 0.0
        for _ in range(n):
            p.run()
        con = _cpu_s(console_pid) - con0
        pg = (_postgres_cpu_s(postmaster) - pg0) if postmaster else float("nan")
        p.cpu_ms = (con * 1000 / n, pg * 1000 / n)


def run_and_report(
    baseline: Probe, found: list[Probe], args: argparse.Namespace, pid: int, pm: int | None
) -> tuple[float, list[str], Probe]:
    """Measure every probe, then its CPU use, and print the table; (baseline p95, the
    pages over the goal, the slowest page)."""
    t0 = time.perf_counter()
    measure([baseline, *found], args.requests)
    print(f"  measured in {time.perf_counter() - t0:.0f} s; load avg {os.getloadavg()[0]:.1f}")
    cpu_pass([baseline, *found], pid, pm, args.cpu_requests)
    base_p95 = percentile(baseline.times, 95)
    print(
        f"{'page':40} {'role':10} {'p50':>7} {'p95':>7} {'max':>7} {'x base':>6} "
        f"{'cpu web':>7} {'cpu pg':>7}   (ms; x base: p95 / baseline p95; cpu: per request)"
    )
    over = []
    for p in [baseline, *found]:
        p95 = percentile(p.times, 95)
        flag = "  OVER GOAL" if p95 > GOAL_P95_MS else ""
        if flag and p is not baseline:
            over.append(p.name)
        print(
            f"{p.name:40} {USERS[p.role][0]:10} {percentile(p.times, 50):7.1f} "
            f"{p95:7.1f} {max(p.times):7.1f} {p95 / base_p95:6.1f} {p.cpu_ms[0]:7.2f} "
            f"{p.cpu_ms[1]:7.2f}{flag}"
        )
    return base_p95, over, max(found, key=lambda p: percentile(p.times, 95))


AGED = {  # rollup table -> its columns, with the day and the event shifted by the copy
    "rollup_sales": "tenant, device_id, {event}, {day}, hour, currency, sales, gross_minor, "
    "refunds, refund_minor",
    "rollup_tax": "tenant, tax_profile, rate, rate_bp, {day}, {event}, sales, gross_minor, "
    "tax_minor, net_minor",
    "rollup_items": "tenant, {day}, sku, name, qty, gross_minor",
    "rollup_promos": "tenant, {event}, {day}, code, promoter, redemptions, discount_minor",
}


def age_rollups(url: str, plan: Plan, age_days: int) -> tuple[int, float]:
    """Make the region ``age_days`` old in its rollups (what the pages read): copies of the
    loaded month's rows, each shifted a month further back, with its fairs renamed (an
    event of a month ago is another event). PostgreSQL only. (rows added, seconds)."""
    first, last = plan.days[0].isoformat(), plan.days[-1].isoformat()
    store = Store.open(url)
    t0 = time.perf_counter()
    added = 0
    try:
        for k in range(1, age_days // len(plan.days)):
            shift = k * len(plan.days)
            day = f"to_char(day::date - {shift}, 'YYYY-MM-DD')"
            event = f"CASE WHEN event_id = '' THEN '' ELSE event_id || '-m{k}' END"
            for table, columns in AGED.items():
                selected = columns.format(day=day, event=event)
                names = columns.format(day="day", event="event_id")
                cur = store.execute(
                    f"INSERT INTO {table} ({names}) SELECT {selected} FROM {table} "
                    "WHERE day >= ? AND day <= ?",
                    (first, last),
                )
                added += cur.rowcount
        store.execute("ANALYZE")
    finally:
        store.close()
    return added, time.perf_counter() - t0


def all_tenants_exports(url: str, plan: Plan) -> tuple[float, int]:
    """Seconds to export every tenant's month as CSV and PDF, one after the other."""
    from console.reports import exports
    from console.reports.period import Period
    from console.scope import Scope

    store = Store.open(url)
    try:
        period = Period.days(plan.days[0].isoformat(), plan.days[-1].isoformat())
        tenants = sorted({plan.tenant(i) for i in range(plan.tills)})
        t0 = time.perf_counter()
        for tenant in tenants:
            for fmt in exports.FORMATS:
                exports.export_ledger(
                    store, Scope("tom", "tax"), tenant, period, fmt, audit=lambda *a: None
                )
        return time.perf_counter() - t0, len(tenants)
    finally:
        store.close()


def _postmaster_pid(pg: LocalPostgres) -> int:
    return int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tills", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--segment", type=int, default=10_000, help="events per segment")
    parser.add_argument("--health", type=int, default=12, help="health messages per till")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
    parser.add_argument("--cpu-requests", type=int, default=10, help="per page, for CPU use")
    parser.add_argument(
        "--db", help="an empty PostgreSQL database URL (default: a cluster of its own)"
    )
    parser.add_argument(
        "--age-days",
        type=int,
        default=0,
        help="then age the rollups to this many days (copies of the month) and measure again",
    )
    parser.add_argument("--check", action="store_true", help="run `edge check` after the load")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--dir", help="where to make the temp folder (default: the system's)")
    args = parser.parse_args()
    logging.getLogger("tillbox.edge").setLevel(logging.ERROR)  # "stock negative": on purpose
    if args.tenants < 1 or args.tills < args.tenants or args.days < 7 or args.requests < 1:
        parser.error("need tills >= tenants >= 1, days >= 7 and requests >= 1")
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=args.days - k) for k in range(args.days)]
    plan = Plan(args.tills, args.tenants, days, args.events, args.segment)
    root = Path(tempfile.mkdtemp(prefix="tillbox-console-bench-", dir=args.dir))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"plan: {args.events:,} events, {args.tills} tills, {args.tenants} tenants, "
        f"{days[0]}..{days[-1]}, segments of {args.segment} events"
    )
    pg = None
    server = None
    try:
        if args.db:
            url = args.db
        else:
            pg = LocalPostgres(root / "pg").start()
            url = pg.create_database("console_bench")
        # a folder of its own: generate() makes the key's folder 0700, and PostgreSQL's
        # user must still reach root/pg (a checkpoint opens pg_control by its full path)
        keys = root / "region"
        generate(keys / "region.key", keys / "region.pub")
        region = Region(
            load_signing_key(keys / "region.key"), keys / "region.key", keys / "region.pub"
        )
        t0 = time.perf_counter()
        loaded = load(root, url, region, plan, args.health)
        wall = time.perf_counter() - t0
        print(
            f"load: {loaded.events:,} events in {wall:.0f} s = {loaded.events / wall:,.0f} "
            f"events/s end to end (write the tills' logs {loaded.gen_s:.0f} s, seal "
            f"{loaded.seal_s:.0f} s, ingest {loaded.ingest_s:.0f} s = "
            f"{loaded.events / loaded.ingest_s:,.0f} events/s with ledgers and rollups)"
        )
        print(
            f"telemetry: {loaded.health:,} health messages in {loaded.health_s:.1f} s; receipt "
            f"index: {loaded.index_events:,} events in {loaded.index_s:.1f} s = "
            f"{loaded.index_events / max(loaded.index_s, 1e-9):,.0f} events/s; ANALYZE "
            f"{loaded.analyze_s:.1f} s; load avg {os.getloadavg()[0]:.1f}"
        )
        if args.check:
            t0 = time.perf_counter()
            store = Store.open(url)
            try:
                report = admin.check(store)
            finally:
                store.close()
            assert report["ok"], report["problems"]
            took = time.perf_counter() - t0
            print(f"check: ledgers and rollups equal recomputations ({took:.0f} s)")
        fairs = tuple(sorted({plan.event_on(i, _last_weekend(days)) for i in range(args.tills)}))
        add_users(url, fairs)
        from systest.console import ConsoleServer

        server = ConsoleServer(url, root, region.key_path).start()
        found, baseline = probes(server.url, url, plan)
        print(
            f"measure: {len(found)} pages x {args.requests} requests, round-robin, through "
            f"uvicorn (`tillbox edge web`, its own process) with httpx; load avg "
            f"{os.getloadavg()[0]:.1f}"
        )
        postmaster = _postmaster_pid(pg) if pg is not None else None
        pid = server.proc.proc.pid
        base_p95, over, worst = run_and_report(baseline, found, args, pid, postmaster)
        worst_p95, worst_name = percentile(worst.times, 95), worst.name.replace(" ", "_")
        exports_ = [p for p in found if p.name.startswith("tax export")]
        export_s = max(max(p.times) for p in exports_) / 1000
        every_s, n_tenants = all_tenants_exports(url, plan)
        print(
            f"tax export of a month (merchant-00, {args.days} days): slowest of "
            f"{len(exports_) * args.requests} CSV/PDF exports {export_s:.3f} s (goal "
            f"{GOAL_EXPORT_S:.0f} s); every tenant's month, CSV + PDF, {n_tenants} tenants: "
            f"{every_s:.2f} s"
        )
        print(
            f"goals: every page p95 <= {GOAL_P95_MS:.0f} ms: "
            f"{'met' if not over else 'NOT met: ' + ', '.join(over)}; a month's tax export "
            f"<= {GOAL_EXPORT_S:.0f} s: {'met' if export_s <= GOAL_EXPORT_S else 'NOT met'}; "
            f"load avg at end {os.getloadavg()[0]:.1f}"
        )
        aged = ""
        if args.age_days > len(days):
            rows, took = age_rollups(url, plan, args.age_days)
            print(
                f"aged: the rollups of {args.age_days} days ({rows:,} rows added: the month's "
                f"rollup rows copied {args.age_days // len(days) - 1} times, each shifted "
                f"{len(days)} days further back, their events renamed) in {took:.0f} s; the "
                "same pages again:"
            )
            for p in [baseline, *found]:
                p.times.clear()
            _b, aged_over, aged_worst = run_and_report(baseline, found, args, pid, postmaster)
            aged = (
                f" aged_worst_p95_ms={percentile(aged_worst.times, 95):.1f} "
                f"aged_worst={aged_worst.name.replace(' ', '_')} "
                f"aged_pages_over_goal={len(aged_over)}"
            )
        print(
            f"baseline_p95_ms={base_p95:.1f} worst_p95_ms={worst_p95:.1f} "
            f"worst={worst_name} pages_over_goal={len(over)} "
            f"tax_export_month_s={export_s:.3f} load_events_per_s={loaded.events / wall:.0f}" + aged
        )
        return 0
    except BaseException:
        for log in (root / "pg" / "postgres.log", *root.glob("console-*.log")):
            if log.exists():  # what the server said before it went
                print(f"--- {log}:\n" + "\n".join(log.read_text().splitlines()[-15:]))
        raise
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            pg.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
