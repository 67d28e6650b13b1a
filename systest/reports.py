"""Helpers for the console's report tests: tills that trade on chosen days, a sync
straight into an :class:`edge.ingest.Ingestor`, and an independent fold of the tills'
own logs into the per-day tax figures a report must show.

* :func:`trading_at` sets the till log's wall clock (the only clock a sale's day comes
  from) to a chosen UTC time; everything else about the sale is the real till's.
* :func:`push` seals a till's log from the edge's stored tip and ingests it, as the
  sync agent would after a cut (the segments really are signed and verified).
* :func:`tax_by_day_from_logs` is the oracle: it reads the tills' logs, never the edge,
  and folds them with rules written here, not imported from the code under test;
  :func:`edge_tax_ledger` reads the edge's own all-time ``tax_ledger``.

The rollups the reports read are the ones the edge's ingest keeps in each segment's
transaction; nothing here writes them.
"""

from __future__ import annotations

import datetime as dt
import time
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import appliance.log
from appliance import events
from appliance.catalog import demo_catalog
from appliance.datadir import DataDir
from appliance.formats import wire
from appliance.keys import load_signing_key
from appliance.till import Till
from edge.ingest import Ingestor
from edge.store import Store


def ms_at(when: str) -> int:
    """``2026-11-28T10:15`` (UTC) in milliseconds."""
    return int(dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp() * 1000)


@contextmanager
def trading_at(when: str) -> Iterator[None]:
    """Inside the block, the till log stamps events from ``when`` (UTC) on, one second
    apart. Only the log's clock moves: ids, monotonic time and the ingest's own clock
    stay real."""
    start_ns = ms_at(when) * 1_000_000
    ticks = iter(range(10**9))
    fake = types.SimpleNamespace(
        time_ns=lambda: start_ns + next(ticks) * 1_000_000_000,
        monotonic_ns=time.monotonic_ns,
    )
    real = appliance.log.time
    appliance.log.time = fake  # type: ignore[assignment]
    try:
        yield
    finally:
        appliance.log.time = real


def push(edge: Ingestor, folder: DataDir, tenant: str = "demo", size: int = 25) -> list[str]:
    """Ingest what ``folder``'s till logged since the edge's stored tip; the outcomes."""
    from sync_agent.reader import LogReader

    device = folder.load_config().device_id
    seq, prev = edge.store.device_tip(device)
    key = load_signing_key(folder.private_key_path)
    reader = LogReader(folder.log_path)
    statuses = []
    try:
        while lines := reader.lines(seq, size):
            data = wire.seal_segment(
                key,
                tenant=tenant,
                device=device,
                first_seq=seq + 1,
                last_seq=seq + len(lines),
                prev=prev,
                lines=lines,
            )
            out = edge.handle(wire.topic_seg(tenant, device), data)
            statuses.append(out.status)
            if out.status != "stored":
                return statuses
            seq, prev = seq + len(lines), wire.segment_id(data)
    finally:
        reader.close()
    return statuses


def _day_hour(wall_ms: int) -> tuple[str, int]:
    at = dt.datetime.fromtimestamp(wall_ms / 1000, dt.UTC)
    return at.date().isoformat(), at.hour


def tax_by_day_from_logs(
    folders: Iterable[DataDir],
) -> dict[tuple[str, str, int, str], list[int]]:
    """(tenant, tax_profile, rate_bp, day) -> [net, tax, gross], folded from the tills'
    own logs: a sale adds under its profile, a refund subtracts under the profile of the
    sale it refunds (looked up across every till of the tenant: by sale id, or by the
    selling till and receipt number for a refund at another till), on its own day; a
    sale whose idempotency key the tenant already sold is counted once."""
    logged = []
    for folder in folders:
        tenant = folder.load_config().section("device")["tenant"]
        with Till.open(folder) as till:
            logged += [(tenant, e) for e in till.log.events()]
    profile_of: dict[tuple[str, ...], str] = {}
    seen: set[tuple[str, str]] = set()
    counted = []
    for tenant, e in logged:
        if e.type == events.SALE_COMPLETED:
            key = (tenant, e.payload["idempotency_key"])
            if key in seen:
                continue
            seen.add(key)
            profile_of[(tenant, e.payload["sale_id"])] = e.payload["tax_profile"]
            profile_of[(tenant, e.device_id, str(e.payload["receipt_no"]))] = e.payload[
                "tax_profile"
            ]
            counted.append((tenant, e, 1))
        elif e.type == events.REFUND_ISSUED:
            counted.append((tenant, e, -1))
    out: dict[tuple[str, str, int, str], list[int]] = {}
    for tenant, e, sign in counted:
        profile = profile_of.get(_sale_key(tenant, e.payload), "unknown")
        day = _day_hour(e.wall_ms)[0]
        for t in e.payload["taxes"]:
            row = out.setdefault((tenant, profile, t["rate_bp"], day), [0, 0, 0])
            row[0] += sign * t["net_minor"]
            row[1] += sign * t["tax_minor"]
            row[2] += sign * t["gross_minor"]
    return out


def _sale_key(tenant: str, p: dict) -> tuple[str, ...]:
    """How a sale or refund names the sale whose profile it is taxed under."""
    if "sale_device" in p:  # a refund at another till: that till's receipt
        return (tenant, p["sale_device"], str(p["sale_receipt_no"]))
    return (tenant, p["sale_id"])


def edge_tax_ledger(store: Store, tenant: str) -> dict[tuple[str, int], list[int]]:
    """The edge's own ``tax_ledger`` (kept per profile and rate *name* at ingest) keyed by
    profile and ``rate_bp`` through the demo catalog's profiles: [net, tax, gross]."""
    catalog = demo_catalog()
    out: dict[tuple[str, int], list[int]] = {}
    for t, profile, rate, _sales, gross, tax, net in store.tax_ledger():
        if t != tenant:
            continue
        row = out.setdefault((profile, catalog.profile(profile).rates[rate]), [0, 0, 0])
        row[0] += int(net)
        row[1] += int(tax)
        row[2] += int(gross)
    return out


def set_stall(store: Store, device_id: str, stall: str) -> None:
    """A device's stall in its profile (the console's device pages will own this)."""
    store.execute(
        "INSERT INTO device_profiles (device_id, stall) VALUES (?, ?) ON CONFLICT (device_id) "
        "DO UPDATE SET stall = excluded.stall",
        (device_id, stall),
    )
