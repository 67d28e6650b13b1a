"""The exactly-once check of the intents at the region, and its oracles.

Everything here reads the tills' own logs and folds them with rules written here from
docs/sync.md ("Reconciliation", the ledgers), never with the code under test
(``edge/ledger.py``, ``edge/reconcile.py``), and compares with what the region stored:

* :func:`links_from_logs`: which sale each refund refunds;
* :func:`over_refunds_from_logs`, :func:`double_redemptions_from_logs`: the flags;
* :func:`ledgers_from_logs`: the tax and stock ledgers;
* :func:`check_intents`: all of them against ``edge.reconcile.from_store`` and the
  stored ledgers (``systest.sync.check_exactly_once`` runs it).

Importing this module needs no pytest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from appliance import events as ev
from appliance.datadir import DataDir
from appliance.till import Till


def over_refunds_from_logs(folders: Iterable[DataDir]) -> dict[tuple[str, int], int]:
    """The oracle of reconciliation's over-refund flags: (selling device, receipt number)
    -> the amount over, folded from the tills' own logs only (no edge data, no code of
    ``edge/reconcile.py``): per tax rate, what all refunds of a receipt gave back beyond
    what the sale took."""
    sold: dict[tuple[str, int], dict[int, int]] = {}
    back: dict[tuple[str, int], dict[int, int]] = {}
    for folder in folders:
        with Till.open(folder) as till:
            for e in till.log.events():
                p = e.payload
                if e.type == ev.SALE_COMPLETED:
                    row = sold.setdefault((e.device_id, p["receipt_no"]), {})
                elif e.type == ev.REFUND_ISSUED:
                    device = p.get("sale_device", e.device_id)
                    row = back.setdefault((device, p["sale_receipt_no"]), {})
                else:
                    continue
                for t in p["taxes"]:
                    row[t["rate_bp"]] = row.get(t["rate_bp"], 0) + t["gross_minor"]
    over = {}
    for key, rates in back.items():
        amount = sum(max(0, g - sold[key].get(bp, 0)) for bp, g in rates.items())
        if amount:
            over[key] = amount
    return over


def double_redemptions_from_logs(folders: Iterable[DataDir]) -> dict[str, list[str]]:
    """The oracle of the double-redemption flags: booking id -> the devices that handed
    it over, for each booking handed over more than once, from the tills' own logs."""
    seen: dict[str, list[str]] = {}
    for folder in folders:
        with Till.open(folder) as till:
            for e in till.log.events():
                if e.type == ev.BOOKING_REDEEMED:
                    seen.setdefault(e.payload["booking_id"], []).append(e.device_id)
    return {b: sorted(d) for b, d in seen.items() if len(d) > 1}


def links_from_logs(folders: Iterable[DataDir]) -> dict[tuple[str, int], tuple[str, int]]:
    """The oracle of reconciliation's links: (refunding device, seq) -> (selling device,
    receipt number) of every refund in the tills' own logs whose sale is in one of them."""
    logged = _logged(folders)
    by_id = {
        e.payload["sale_id"]: (e.device_id, e.payload["receipt_no"])
        for _t, e in logged
        if e.type == ev.SALE_COMPLETED
    }
    sold = set(by_id.values())
    out = {}
    for _tenant, e in logged:
        if e.type != ev.REFUND_ISSUED:
            continue
        p = e.payload
        if "sale_device" in p:
            sale = (p["sale_device"], p["sale_receipt_no"])
        else:
            sale = by_id.get(p["sale_id"])
        if sale in sold:
            out[(e.device_id, e.seq)] = sale
    return out


def ledgers_from_logs(
    folders: Iterable[DataDir],
) -> tuple[dict[tuple[str, str, str], list[int]], dict[tuple[str, str], int]]:
    """An oracle of the region's tax and stock ledgers from the tills' own logs, written
    here from the rules in docs/sync.md (no code of ``edge/ledger.py``): tax per (tenant,
    profile, rate name) = [sales, gross, tax, net]: a sale adds under its profile (the
    first sale of an idempotency key only); a refund subtracts under the profile of the
    sale it names (by ``sale_id``, or by ``sale_device`` + ``sale_receipt_no``), ``unknown``
    when no log holds that sale. Stock per (tenant, sku): sales take out, refunds put back,
    bookings handed over paid online take out."""
    logged = _logged(folders)
    profile_of: dict[tuple, str] = {}
    seen: set[tuple[str, str]] = set()
    counted = []
    for tenant, e in logged:
        p = e.payload
        if e.type == ev.SALE_COMPLETED:
            if (tenant, p["idempotency_key"]) in seen:
                continue
            seen.add((tenant, p["idempotency_key"]))
            profile_of[(tenant, "id", p["sale_id"])] = p["tax_profile"]
            profile_of[(tenant, "receipt", e.device_id, p["receipt_no"])] = p["tax_profile"]
        if e.type in (ev.SALE_COMPLETED, ev.REFUND_ISSUED, ev.BOOKING_REDEEMED):
            counted.append((tenant, e))
    tax: dict[tuple[str, str, str], list[int]] = {}
    stock: dict[tuple[str, str], int] = {}
    for tenant, e in counted:
        p = e.payload
        if e.type == ev.BOOKING_REDEEMED:
            if p["payment"] == "paid_online":
                for ln in p["lines"]:
                    stock[(tenant, ln["sku"])] = stock.get((tenant, ln["sku"]), 0) - ln["qty"]
            continue
        sign = 1 if e.type == ev.SALE_COMPLETED else -1
        if sign == 1:
            profile = p["tax_profile"]
        elif "sale_device" in p:
            key = (tenant, "receipt", p["sale_device"], p["sale_receipt_no"])
            profile = profile_of.get(key, "unknown")
        else:
            profile = profile_of.get((tenant, "id", p["sale_id"]), "unknown")
        for t in p["taxes"]:
            row = tax.setdefault((tenant, profile, t["rate"]), [0, 0, 0, 0])
            row[0] += 1 if sign == 1 else 0
            row[1] += sign * t["gross_minor"]
            row[2] += sign * t["tax_minor"]
            row[3] += sign * t["net_minor"]
        for ln in p["lines"]:
            stock[(tenant, ln["sku"])] = stock.get((tenant, ln["sku"]), 0) - sign * ln["qty"]
    return tax, stock


def _logged(folders: Iterable[DataDir]) -> list[tuple[str, Any]]:
    out = []
    for folder in folders:
        tenant = folder.load_config().section("device")["tenant"]
        with Till.open(folder) as till:
            out += [(tenant, e) for e in till.log.events()]
    return out


def check_intents(db: str, folders: list[DataDir]) -> Any:
    """The exactly-once check of the intents (after every till synced): every refund is
    linked to its sale and none waits; every flag is the oracle's (over-refunds with
    their amount, double redemptions); the tax and stock ledgers equal an independent
    fold of the tills' own logs. Returns the reconciliation report."""
    from edge import reconcile
    from edge.store import Store

    store = Store.open(db)
    try:
        report = reconcile.from_store(store)
        assert report.unreadable == [] and report.ref_mismatches == [], report.to_json()
        assert report.pending == [], f"refunds not linked: {report.pending[:3]}"
        assert store.pending_refund_rows() == []
        links = {
            (x["refund"]["device"], x["refund"]["seq"]): (
                x["sale"]["device"],
                x["sale"]["receipt_no"],
            )
            for x in report.links
        }
        assert links == links_from_logs(folders)
        assert {
            (f["sale"]["device"], f["sale"]["receipt_no"]): f["over_minor"]
            for f in report.over_refunds
        } == over_refunds_from_logs(folders)
        assert {
            f["booking_id"]: sorted(r["device"] for r in f["redemptions"])
            for f in report.double_redemptions
        } == double_redemptions_from_logs(folders)
        tax, stock = ledgers_from_logs(folders)
        stored_tax = {(t, p, r): [int(x) for x in rest] for t, p, r, *rest in store.tax_ledger()}
        assert stored_tax == {k: v for k, v in tax.items() if any(v)}, (stored_tax, tax)
        for tenant, sku, delta in store.stock_adjustments():
            stock[(tenant, sku)] = stock.get((tenant, sku), 0) + int(delta)
        levels = {(t, sku): int(q) for t, sku, q in store.stock_levels()}
        assert {k: v for k, v in levels.items() if v} == {k: v for k, v in stock.items() if v}
        return report
    finally:
        store.close()
