"""Filing a tax period, and the amendments that late offline sales make to it.

A filing is (tenant, tax profile, first day, last day), who filed it and when, and
the snapshot of its ledger rows at that moment. It is locked: the snapshot is never
rewritten (console.reports.store refuses UPDATE and DELETE with a trigger), and no
second filing may overlap it. A till that was offline syncs later; its sales and
refunds for days inside a filed period do change the live ledger, and the filing
shows them as an **amendment**: the difference between the ledger now and the
snapshot, with the late sales and refunds listed. Nothing changes silently.

What is "late" is decided by each device's last stored sequence number, recorded with
the snapshot in the same database snapshot (console.reports.store.filing_transaction):
an event above its device's watermark was not in the figures as filed. That makes
the listed late events sum exactly to the amendment, with no clock involved.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from appliance.errors import NotFound, RuleViolation
from console.reports import store as db
from console.reports.audit import Audit, detail
from console.reports.period import Period, ReportInputError, check_ident, day_of_ms
from console.reports.tax import TAX_ROLES, TaxLedger, TaxRow
from console.scope import Scope
from edge import ledger
from edge.store import Store


@dataclass(frozen=True)
class Filing:
    id: int
    tenant: str
    tax_profile: str
    start: str
    end: str
    filed_by: str
    filed_ms: int
    rows: tuple[TaxRow, ...]  # as filed; never changes
    watermarks: dict[str, int]

    @property
    def period(self) -> Period:
        return Period(self.start, self.end)

    def as_filed(self) -> TaxLedger:
        return TaxLedger(self.tenant, self.period, self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "tax_profile": self.tax_profile,
            "from": self.start,
            "to": self.end,
            "filed_by": self.filed_by,
            "filed_ms": self.filed_ms,
            **self.as_filed().to_json(),
        }


@dataclass(frozen=True)
class LateEntry:
    """A sale or refund stored after the filing, for a day inside it."""

    device_id: str
    seq: int
    kind: str  # "sale" | "refund"
    receipt_no: int
    day: str
    wall_ms: int
    rows: tuple[TaxRow, ...]  # signed: a refund's are negative

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "seq": self.seq,
            "kind": self.kind,
            "receipt_no": self.receipt_no,
            "day": self.day,
            "wall_ms": self.wall_ms,
            "rows": [r.to_json() for r in self.rows],
        }


@dataclass(frozen=True)
class FilingStatus:
    filing: Filing
    current: TaxLedger  # the live ledger of the same profile and days
    amendment: tuple[TaxRow, ...]  # current minus as filed, per rate; only non-zero rows
    late: tuple[LateEntry, ...]

    @property
    def amended(self) -> bool:
        return bool(self.amendment or self.late)

    def to_json(self) -> dict[str, Any]:
        return {
            "filing": self.filing.to_json(),
            "current": self.current.to_json(),
            "amended": self.amended,
            "amendment": {
                "rows": [r.to_json() for r in self.amendment],
                "total_gross_minor": sum(r.gross_minor for r in self.amendment),
            },
            "late": [e.to_json() for e in self.late],
        }


def _snapshot_text(rows: tuple[TaxRow, ...]) -> str:
    return json.dumps([r.to_json() for r in rows], sort_keys=True, separators=(",", ":"))


def _filing(row: tuple) -> Filing:
    id_, tenant, profile, start, end, who, filed_ms, snapshot, marks = row
    rows = tuple(TaxRow(**r) for r in json.loads(snapshot))
    return Filing(
        int(id_), tenant, profile, start, end, who, int(filed_ms), rows, json.loads(marks)
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def file_period(
    store: Store,
    scope: Scope,
    tenant: str,
    tax_profile: str,
    period: Period,
    *,
    audit: Audit,
    now_ms: int | None = None,
) -> Filing:
    """Mark ``period`` of the tenant's profile filed, with its rows as they are now.

    Refused (one line, :class:`RuleViolation`) when the period has not ended yet or
    overlaps a filing of the same profile."""
    scope.require(*TAX_ROLES)
    scope.check_tenant(check_ident(tenant, "tenant"))
    check_ident(tax_profile, "tax profile")
    if period.event_id is not None:
        raise ReportInputError(
            "a filing covers whole days of a tax profile, not one event; leave the event out"
        )
    now_ms = _now_ms() if now_ms is None else now_ms
    today = day_of_ms(now_ms)
    if period.end >= today:
        raise RuleViolation(
            f"{period.end} is not over yet (today is {today} UTC); "
            "file a period that ended before today"
        )
    with db.filing_transaction(store):
        clash = db.overlapping_filings(store, scope, tenant, tax_profile, period.start, period.end)
        if clash:
            other = _filing(clash[0])
            raise RuleViolation(
                f"{tenant}'s {tax_profile} is already filed for {other.start}..{other.end} "
                f"(filing {other.id}, by {other.filed_by}); file a period that does not overlap it"
            )
        rows = tuple(
            TaxRow(*r)
            for r in db.tax_rows(store, scope, tenant, period.start, period.end, None, tax_profile)
        )
        watermarks = db.device_watermarks(store, scope, tenant)
        snapshot = _snapshot_text(rows)
        filing_id = db.insert_filing(
            store,
            tenant,
            tax_profile,
            period.start,
            period.end,
            scope.user,
            now_ms,
            snapshot,
            json.dumps(watermarks, sort_keys=True, separators=(",", ":")),
        )
    filed = Filing(
        filing_id,
        tenant,
        tax_profile,
        period.start,
        period.end,
        scope.user,
        now_ms,
        rows,
        watermarks,
    )
    audit(
        scope.user,
        "tax.file",
        detail(
            filing=filing_id,
            tenant=tenant,
            tax_profile=tax_profile,
            period=period.label(),
            total_gross_minor=filed.as_filed().total_gross_minor,
            snapshot_sha256=hashlib.sha256(snapshot.encode()).hexdigest(),
        ),
    )
    return filed


def get_filing(store: Store, scope: Scope, filing_id: int) -> Filing:
    scope.require(*TAX_ROLES)
    if isinstance(filing_id, bool) or not isinstance(filing_id, int) or not 0 < filing_id < 2**63:
        raise ReportInputError(f"a filing id is a positive whole number, got {filing_id!r}")
    row = db.filing(store, scope, filing_id)
    if row is None:
        raise NotFound(f"there is no filing {filing_id}; pick one from the list of filings")
    return _filing(row)


def list_filings(store: Store, scope: Scope, tenant: str | None = None) -> list[Filing]:
    scope.require(*TAX_ROLES)
    if tenant is not None:
        scope.check_tenant(check_ident(tenant, "tenant"))
    return [_filing(r) for r in db.filings(store, scope, tenant)]


def _diff(current: tuple[TaxRow, ...], filed: tuple[TaxRow, ...]) -> tuple[TaxRow, ...]:
    totals: dict[tuple[str, int], list[int]] = {}
    for sign, rows in ((1, current), (-1, filed)):
        for r in rows:
            t = totals.setdefault((r.tax_profile, r.rate_bp), [0, 0, 0])
            t[0] += sign * r.net_minor
            t[1] += sign * r.tax_minor
            t[2] += sign * r.gross_minor
    return tuple(TaxRow(p, bp, *t) for (p, bp), t in sorted(totals.items()) if any(t))


def _late_entries(store: Store, scope: Scope, filed: Filing) -> tuple[LateEntry, ...]:
    """The sales and refunds above the watermarks, for the filing's profile and days.

    The fold is the edge's: a duplicate sale (same idempotency key) counts nothing, a
    refund counts negative under the refunded sale's profile (edge/ledger.py), found by
    its sale id, or by the selling till and receipt number for a refund at another till."""
    found = db.ledger_events_after(store, scope, filed.tenant, filed.watermarks)
    parsed = []
    refunded, refunded_elsewhere = set(), set()
    for device, seq, type_, body, dup_of in found:
        event = json.loads(body)  # stored only after ingest verified and parsed it
        intent = ledger.extract(type_, event["payload"])
        if intent is None or (type_ == ledger.SALE and dup_of):
            continue
        parsed.append((device, seq, event, intent))
        if type_ == ledger.REFUND and intent.sale_device:  # a receipt of another till
            refunded_elsewhere.add((intent.sale_device, intent.receipt_no))
        elif type_ == ledger.REFUND:
            refunded.add(intent.sale_id)
    profiles = store.sale_profiles(filed.tenant, sorted(refunded)) if refunded else {}
    by_receipt = (
        store.sale_profiles_by_receipt(filed.tenant, sorted(refunded_elsewhere))
        if refunded_elsewhere
        else {}
    )
    entries = []
    for device, seq, event, intent in parsed:
        day = day_of_ms(event["wall_ms"])
        if not filed.start <= day <= filed.end:
            continue
        sold = (
            by_receipt.get((intent.sale_device, intent.receipt_no))
            if intent.sale_device
            else profiles.get(intent.sale_id)
        )
        profile = intent.tax_profile or sold or "unknown"
        if profile != filed.tax_profile:
            continue
        per_rate: dict[int, list[int]] = {}
        for tax, (_rate, gross, amount, net) in zip(
            event["payload"]["taxes"], intent.tax, strict=True
        ):
            t = per_rate.setdefault(tax["rate_bp"], [0, 0, 0])
            t[0] += net
            t[1] += amount
            t[2] += gross
        entries.append(
            LateEntry(
                device,
                seq,
                "sale" if intent.type == ledger.SALE else "refund",
                int(event["payload"]["receipt_no"]),
                day,
                int(event["wall_ms"]),
                tuple(TaxRow(profile, bp, *t) for bp, t in sorted(per_rate.items())),
            )
        )
    return tuple(entries)


def filing_status(store: Store, scope: Scope, filing_id: int) -> FilingStatus:
    """A filing as filed, the live figures of its profile and days, and the amendment."""
    filed = get_filing(store, scope, filing_id)
    rows = db.tax_rows(store, scope, filed.tenant, filed.start, filed.end, None, filed.tax_profile)
    current = TaxLedger(filed.tenant, filed.period, tuple(TaxRow(*r) for r in rows))
    return FilingStatus(
        filed, current, _diff(current.rows, filed.rows), _late_entries(store, scope, filed)
    )


def filings_touching(store: Store, scope: Scope, tenant: str, period: Period) -> list[FilingStatus]:
    """The filings (of any profile) whose days meet ``period``: a ledger page shows each
    with its amendment, so figures that moved after filing are never shown bare."""
    scope.require(*TAX_ROLES)
    scope.check_tenant(check_ident(tenant, "tenant"))
    rows = db.overlapping_filings(store, scope, tenant, None, period.start, period.end)
    return [filing_status(store, scope, int(r[0])) for r in rows]
