"""Helpers for the console's tests (and its benchmark): a region whose tills really sold,
the console's users, the figures the tills' own logs give, a console served by uvicorn.

Data reaches the region the real way: each till sells and prints receipts in its own
log, the log is sealed into signed segments (``systest.sync.seal_log``) and the edge's
``Ingestor`` verifies and stores them. Every till trades at the event ``fair`` (its
tenant's schedule, signed by the region, and the cashier's answer), some sales with a
promo code in the hours before; t1 is enrolled (a permit scan and a geotagged camera
photo) and ran a self-test, and stands at stall ``stall-1`` in the region's device
profiles: what the promoter's and the inspector's pages show. The expected figures are
folded from the tills' logs here, independently of the edge and of the console, so a
page that shows the edge's rollups can be checked against what the tills recorded.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import events as ev
from appliance.datadir import DataDir
from appliance.formats import wire
from appliance.formats.telemetry import Health
from appliance.till import Till
from edge.broker import free_port
from edge.store import Store
from systest.sync import TILLBOX, Proc, Region, enroll, make_till, seal_log, sell

# device -> tenant: two tills of one merchant, one of another
TILLS = {"t1": "demo", "t2": "demo", "t3": "other"}
SALES = {"t1": 12, "t2": 9, "t3": 5}  # different figures per till, so a leak would show
PASSWORD = "correct horse battery"
EVENT = "fair"  # the event every till of this world trades at (the promoter's)
STALLS = {"t1": "stall-1"}  # the region's device profiles: the inspector's stall
PROMO_SALES = {"t1": 3, "t3": 2}  # sales with the code MARKET10, an hour apart, before now
LOCATION = (48.2082, 16.3738)  # the stall's [location]: the enrollment photo is geotagged
ENROLLED = ("t1", "t2")  # tills that enrolled (t1's export is imported at the region)
# sign-in name -> (role, tenant, events, stalls)
USERS: dict[str, tuple[str, str | None, tuple[str, ...], tuple[str, ...]]] = {
    "ada": ("admin", None, (), ()),
    "mia": ("merchant", "demo", (), ()),
    "otto": ("merchant", "other", (), ()),
    "tess": ("technician", None, (), ()),
    "tom": ("tax", None, (), ()),
    "pia": ("promoter", None, ("fair",), ()),
    "ivan": ("inspector", None, (), ("stall-1",)),
    "ines": ("inspector", None, (EVENT,), ()),
}


def build_tills(
    root: Path,
    region: Region,
    tills: dict[str, str] = TILLS,
    sales: dict[str, int] = SALES,
    printed: int = 3,
) -> dict[str, DataDir]:
    """Tills that sold ``sales[device]`` times (a refund every 7th, a card every 3rd) and printed
    their first ``printed`` receipts on the simulated printer (``receipt.printed`` with the
    short code)."""
    from appliance.devices import open_devices
    from appliance.services.printing import default_qr_for, print_sale_receipt

    folders = {}
    for device, tenant in tills.items():
        folder = make_till(root, device, region, tenant=tenant)
        attend(folder, region)
        sell(folder, sales.get(device, 10))
        promo_sales(folder, PROMO_SALES.get(device, 0))
        with Till.open(folder) as till:
            devices = open_devices(till.config, folder)
            try:
                for event in [e for e in till.log.events() if e.type == ev.SALE_COMPLETED][
                    :printed
                ]:
                    print_sale_receipt(till, event, devices.printer, default_qr_for(till, event))
            finally:
                devices.close()
        folders[device] = folder
    for device in ENROLLED:
        if device in folders:
            enroll_stall(folders[device], root)
    return folders


def attend(folder: DataDir, region: Region, event_id: str = EVENT) -> None:
    """The tenant's schedule (one event from a month ago to a month ahead, eu-market),
    signed by the region and applied as from a USB stick, and the cashier's answer to
    which event the till trades at (asked until a self-test confirms the clock)."""
    from systest.multitill import deliver, schedule_of, scheduled

    now = int(time.time() * 1000)
    month = 30 * 24 * 3600 * 1000
    tenant = folder.load_config().section("device")["tenant"]
    event = scheduled(event_id, now - month, now + month, "eu-market", name="Riverside Fair")
    deliver(folder, region, schedule_of(event), 1, tenant)
    with Till.open(folder) as till:
        if till.current_event().how != "clock":
            till.choose_event(event_id)


def promo_sales(folder: DataDir, n: int) -> None:
    """``n`` sales with the promo code MARKET10, one per hour up to an hour ago (the
    promoter's footfall per hour has more than one hour to show)."""
    from appliance.pricing import CartLine
    from systest.reports import trading_at

    start = datetime.now(UTC).replace(minute=5, second=0, microsecond=0)
    for i in range(n):
        at = start.timestamp() - (n - i) * 3600
        with trading_at(datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M")):
            with Till.open(folder) as till:
                till.sell([CartLine("BRATW", 2)], "cash", promo_code="MARKET10")


def enroll_stall(folder: DataDir, root: Path) -> None:
    """The till's enrollment: a permit scan (PDF), a photo taken by its camera (geotagged
    from its [location]), the attestation; then a self-test, recorded in its log."""
    import tomli_w

    from compliance import enroll
    from compliance.selftest import run_selftest
    from compliance.testing import FakeProbes, png_bytes

    config = folder.load_config()
    config.update("location", latitude=LOCATION[0], longitude=LOCATION[1])
    folder.config_path.write_text(tomli_w.dumps(config.data))
    permit = root / f"{config.device_id}-permit.pdf"
    permit.write_bytes(b"%PDF-1.4\n% trading permit TP-2291, Riverside Fair\n%%EOF\n")
    data = enroll.EnrollmentInput(
        operator="Ann Trader",
        business="Riverside Makers",
        registration="HRB 1234",
        address="1 Market Sq",
        permits=[enroll.PermitInput("trading", "TP-2291", "2099-12-31", str(permit))],
        photos=[enroll.PhotoInput("stall", "camera")],
        attestation="The electrical set-up was checked by a qualified person.",
        confirmed=True,
        assets=[("ENG-1", "Laser engraver")],
    )
    probes = FakeProbes(
        frame=png_bytes(480, 320, (38, 111, 92))
    )  # the stall, as the camera sees it
    with Till.open(folder) as till:
        enroll.enroll(till, data, probes)
    run_selftest(
        folder, probes, only=["printer", "engraver", "log", "device_key", "permits", "enrollment"]
    )


def import_enrollments(
    db: str, folders: dict[str, DataDir], root: Path, devices: tuple[str, ...] = ("t1",)
) -> None:
    """Import the tills' enrollment exports at the region (edge.enrollments, what the
    console's upload and `tillbox edge enrollment import` run)."""
    from edge.enrollments import import_enrollment

    store = Store.open(db)
    try:
        for device in devices:
            data = export_enrollment(folders[device], root / f"{device}-enrollment.zip")
            import_enrollment(store, data, int(time.time() * 1000))
    finally:
        store.close()


def export_enrollment(folder: DataDir, out: Path) -> bytes:
    """The till's enrollment export file (``tillbox enrollment export``), as bytes."""
    from compliance.enroll import export_for_region

    with Till.open(folder) as till:
        export_for_region(till, out)
    return out.read_bytes()


# (tenant, sku) -> a counted level set before the sales arrive, so some go below zero
TRACKED = {("demo", "HONEY"): 2}


def ingest(
    db: str,
    region: Region,
    folders: Iterable[DataDir],
    tracked: dict[tuple[str, str], int] = TRACKED,
    stalls: dict[str, str] = STALLS,
) -> None:
    """Enroll the tills, set their ``stalls``, count the ``tracked`` stock, and store the
    tills' whole logs through the edge's Ingestor (a tracked SKU that goes below zero is
    flagged)."""
    from edge import admin
    from edge.ingest import Ingestor

    folders = list(folders)
    enroll(db, *folders)
    store = Store.open(db)
    try:
        for device, stall in stalls.items():
            admin.set_profile(store, device, stall)
        for (tenant, sku), qty in tracked.items():
            admin.stock_set(store, tenant, sku, qty, "opening count")
        ingestor = Ingestor(store, region.key)
        for folder in folders:
            config = folder.load_config()
            tenant = config.section("device")["tenant"]
            for data in seal_log(folder, size=40, tenant=tenant):
                out = ingestor.handle(wire.topic_seg(tenant, config.device_id), data)
                assert out.status == "stored", out
    finally:
        store.close()


def add_users(db: str, users: dict = USERS, password: str = PASSWORD) -> None:
    from console import auth, tables

    store = Store.open(db)
    try:
        tables.ensure_schema(store)
        for name, (role, tenant, events, stalls) in users.items():
            auth.add_user(store, name, role, password, tenant, events, stalls)
    finally:
        store.close()


# -- what the tills' own logs say ---------------------------------------------------------
def _day(wall_ms: int) -> str:
    return datetime.fromtimestamp(wall_ms / 1000, UTC).date().isoformat()


@dataclass
class Figures:
    """Folded from the tills' logs: per device and per SKU, and each receipt."""

    per_device: dict[str, dict[str, int]]
    per_sku: dict[str, dict[str, Any]]  # per tenant-less SKU of the tills folded
    receipts: list[dict[str, Any]]
    days: set[str]


def till_figures(folders: Iterable[DataDir]) -> Figures:
    per_device: dict[str, dict[str, int]] = {}
    per_sku: dict[str, dict[str, Any]] = {}
    receipts = []
    days: set[str] = set()
    for folder in folders:
        with Till.open(folder) as till:
            device = till.device_id
            row = per_device.setdefault(
                device, {"sales": 0, "gross_minor": 0, "refunds": 0, "refund_minor": 0}
            )
            codes = {}
            for e in till.log.events():
                p = e.payload
                if e.type in (ev.RECEIPT_PRINTED,) and "code" in p:
                    codes[p["receipt_no"]] = p["code"]
                if e.type not in (ev.SALE_COMPLETED, ev.REFUND_ISSUED):
                    continue
                days.add(_day(e.wall_ms))
                gross = sum(t["gross_minor"] for t in p["taxes"])
                if e.type == ev.SALE_COMPLETED:
                    row["sales"] += 1
                    row["gross_minor"] += gross
                    for ln in p["lines"]:
                        item = per_sku.setdefault(
                            ln["sku"], {"name": ln["name"], "qty": 0, "gross_minor": 0}
                        )
                        item["qty"] += ln["qty"]
                        item["gross_minor"] += ln["gross_minor"]
                else:
                    row["refunds"] += 1
                    row["refund_minor"] += gross
                receipts.append(
                    {
                        "device_id": device,
                        "receipt_no": p["receipt_no"],
                        "kind": "S" if e.type == ev.SALE_COMPLETED else "R",
                        "total_minor": p["total_minor"],
                        "seq": e.seq,
                    }
                )
            for r in receipts:
                if r["device_id"] == device:
                    r["code"] = codes.get(r["receipt_no"], "")
    return Figures(per_device, per_sku, receipts, days)


def set_sync(folder: DataDir, **settings: Any) -> None:
    """Change the till's [sync] settings (a short health interval for a test, ...)."""
    import tomli_w

    config = folder.load_config()
    config.update("sync", **settings)
    folder.config_path.write_text(tomli_w.dumps(config.data))


# -- health messages ----------------------------------------------------------------------
def health_of(
    folder: DataDir, sent_ms: int, acked_seq: int | None = None, **changes: Any
) -> Health:
    """The till's health as its sync agent builds it from its log (``sync_agent.health``;
    what is acked from the till's own sync state unless ``acked_seq`` says), with
    ``changes`` to the fields (a printer low on paper, events queued...)."""
    import dataclasses

    from appliance import sync_state
    from sync_agent.health import HealthReader

    with Till.open(folder) as till:
        config = folder.load_config()
        reader = HealthReader(
            till.log, config, config.device_id, config.section("device")["tenant"]
        )
        tail = till.log.last()[0]
        acked = sync_state.read(folder.sync_dir).acked_seq if acked_seq is None else acked_seq
        health = reader.health(
            tail=tail,
            acked_seq=acked,
            drain_estimate_s=0,
            now_ms=sent_ms,
        )
    return dataclasses.replace(health, **changes)


def send_health(db: str, folder: DataDir, received_ms: int, sent_ms: int, **changes: Any) -> None:
    """A health message signed by the till's key, stored by the edge's HealthIngestor as
    if it had arrived at ``received_ms`` (the agent publishes the same over MQTT)."""
    from appliance.formats import telemetry
    from appliance.keys import load_signing_key
    from edge.telemetry import HealthIngestor

    health = health_of(folder, sent_ms, **changes)
    data = telemetry.seal_health(load_signing_key(folder.private_key_path), health)
    store = Store.open(db)
    try:
        topic = wire.topic_health(health.tenant, health.device)
        out = HealthIngestor(store).handle(topic, data, received_ms)
        assert out.status == "stored", out
    finally:
        store.close()


# -- a console served for real ------------------------------------------------------------
class ConsoleServer:
    """``tillbox edge web`` on a free loopback port, as its own process; over HTTPS with
    ``tls`` (a certificate that is its own CA, as ``systest.https.make_cert`` makes, and
    its key)."""

    def __init__(
        self,
        db: str,
        folder: Path,
        key: Path | None = None,
        *extra: str,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = free_port()
        self.tls = tls
        args = [TILLBOX, "edge", "web", "--db", db, "--listen", f"127.0.0.1:{self.port}"]
        if key is not None:
            args += ["--key", str(key)]
        if tls is not None:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.proc = Proc([*args, *extra], folder / f"console-{self.port}.log")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ConsoleServer:
        import ssl

        context = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None
        self.proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise AssertionError(f"the console exited: {self.proc.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=2, context=context) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the console did not answer in {timeout} s: {self.proc.log()}")

    def stop(self) -> None:
        self.proc.stop()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``tillbox ARGS`` with output captured (the console's commands)."""
    return subprocess.run(
        [TILLBOX, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
