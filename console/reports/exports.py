"""CSV and PDF exports of the tax ledger and of a filing, each recorded by the audit hook.

The CSV is for a spreadsheet or an accountant's import: one header line, amounts in
integer minor units (exact to the cent, no decimal point to misread), a ``record``
column saying what each line is. The PDF (console.reports.pdf) is for a person and
shows the same figures in major units. Both are made from one :class:`TaxLedger`
read, so they cannot disagree with each other or with the API.

Every export calls ``audit(user, action, detail)`` after it was made and before it is
returned; the detail names the period and carries the SHA-256 of the bytes handed out,
so the log proves which figures left the region.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from dataclasses import dataclass

from console.reports import pdf
from console.reports.audit import Audit, detail
from console.reports.filing import FilingStatus, filing_status, filings_touching
from console.reports.period import Period, ReportInputError
from console.reports.tax import TaxLedger, TaxRow, rate_label, tax_ledger
from console.scope import Scope
from edge.store import Store

FORMATS = ("csv", "pdf")
LEDGER_COLUMNS = (
    "record", "tenant", "from", "to", "event", "tax_profile", "rate_bp",
    "net_minor", "tax_minor", "gross_minor",
)  # fmt: skip
FILING_COLUMNS = (
    "record", "filing", "tenant", "tax_profile", "from", "to", "filed_by", "filed_ms",
    "device_id", "seq", "kind", "receipt_no", "day", "rate_bp",
    "net_minor", "tax_minor", "gross_minor",
)  # fmt: skip


@dataclass(frozen=True)
class Export:
    content: bytes
    filename: str
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``...)
    is quoted with a leading apostrophe; numbers stay numbers. Identifiers and days
    never start so; a user's name might."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue().encode("utf-8")


def ledger_csv(ledger: TaxLedger) -> bytes:
    """Header, one ``row`` line per profile and rate, one ``total`` line."""
    p = ledger.period
    head = [ledger.tenant, p.start, p.end, p.event_id or ""]
    lines: list[list[object]] = [list(LEDGER_COLUMNS)]
    for r in ledger.rows:
        lines.append(
            ["row", *head, r.tax_profile, r.rate_bp, r.net_minor, r.tax_minor, r.gross_minor]
        )
    lines.append(
        ["total", *head, "", "", ledger.total_net_minor, ledger.total_tax_minor,
         ledger.total_gross_minor]
    )  # fmt: skip
    return _csv(lines)


def filing_csv(status: FilingStatus) -> bytes:
    """``filed`` lines (the snapshot), ``amendment`` lines (now minus filed), one ``late``
    line per rate of each late sale or refund, ``current`` lines (the figures now)."""
    f = status.filing
    head = [f.id, f.tenant, f.tax_profile, f.start, f.end, f.filed_by, f.filed_ms]
    no_event = ["", "", "", "", ""]
    lines: list[list[object]] = [list(FILING_COLUMNS)]

    def add(record: str, rows: tuple[TaxRow, ...], event: list[object]) -> None:
        for r in rows:
            lines.append(
                [record, *head, *event, r.rate_bp, r.net_minor, r.tax_minor, r.gross_minor]
            )

    add("filed", f.rows, no_event)
    add("amendment", status.amendment, no_event)
    for e in status.late:
        add("late", e.rows, [e.device_id, e.seq, e.kind, e.receipt_no, e.day])
    add("current", status.current.rows, no_event)
    return _csv(lines)


def _filing_note(status: FilingStatus) -> tuple[str, str]:
    f = status.filing
    heading = f"Filed: {f.tax_profile} {f.start}..{f.end}"
    text = f"Filing {f.id}, filed {pdf.stamp(f.filed_ms)} by {f.filed_by}; as filed gross " + (
        f"{pdf.amount(f.as_filed().total_gross_minor)}."
    )
    if status.amended:
        change = sum(r.gross_minor for r in status.amendment)
        text += (
            f" AMENDED since: {len(status.late)} late sale(s)/refund(s), gross "
            f"{'+' if change >= 0 else ''}{pdf.amount(change)} (the ledger above includes them)."
        )
    else:
        text += " No change since filing."
    return heading, text


def _name(tenant: str, period: Period, ext: str) -> str:
    event = f"-{period.event_id}" if period.event_id else ""
    return f"tax-{tenant}-{period.start}-{period.end}{event}.{ext}"


def export_ledger(
    store: Store,
    scope: Scope,
    tenant: str,
    period: Period,
    fmt: str,
    *,
    audit: Audit,
    tax_profile: str | None = None,
    now_ms: int | None = None,
) -> Export:
    """The ledger of ``period`` as ``fmt`` ``csv`` or ``pdf``."""
    if fmt not in FORMATS:
        raise ReportInputError(f"export format must be csv or pdf, got {fmt!r}")
    ledger = tax_ledger(store, scope, tenant, period, tax_profile)
    if fmt == "csv":
        out = Export(ledger_csv(ledger), _name(tenant, period, "csv"), "text/csv; charset=utf-8")
    else:
        notes = [_filing_note(s) for s in filings_touching(store, scope, tenant, period)]
        content = pdf.ledger_pdf(ledger, scope.user, _now_ms() if now_ms is None else now_ms, notes)
        out = Export(content, _name(tenant, period, "pdf"), "application/pdf")
    audit(
        scope.user,
        f"tax.export.{fmt}",
        detail(
            tenant=tenant,
            **{"from": period.start, "to": period.end},
            event=period.event_id,
            tax_profile=tax_profile,
            total_gross_minor=ledger.total_gross_minor,
            sha256=out.sha256,
        ),
    )
    return out


def export_filing(
    store: Store,
    scope: Scope,
    filing_id: int,
    fmt: str,
    *,
    audit: Audit,
    now_ms: int | None = None,
) -> Export:
    """A filing (as filed, amendment, late sales, figures now) as ``csv`` or ``pdf``."""
    if fmt not in FORMATS:
        raise ReportInputError(f"export format must be csv or pdf, got {fmt!r}")
    status = filing_status(store, scope, filing_id)
    f = status.filing
    name = f"tax-filing-{f.id}-{f.tenant}-{f.tax_profile}-{f.start}-{f.end}.{fmt}"
    if fmt == "csv":
        out = Export(filing_csv(status), name, "text/csv; charset=utf-8")
    else:
        late = [
            f"{e.kind} receipt {e.receipt_no} on {e.day}, till {e.device_id} seq {e.seq}: "
            + ", ".join(
                f"{rate_label(r.rate_bp)} gross {pdf.amount(r.gross_minor)}" for r in e.rows
            )
            for e in status.late
        ]
        summary = [
            f"Tenant {f.tenant}, tax profile {f.tax_profile}, days {f.start}..{f.end}",
            f"Filed {pdf.stamp(f.filed_ms)} by {f.filed_by}",
            "Status: AMENDED by late sales" if status.amended else "Status: unchanged since filing",
        ]
        content = pdf.filing_pdf(
            f"Tax filing {f.id}: {f.tenant}",
            summary,
            f.rows,
            status.current.rows,
            status.amendment,
            late,
            scope.user,
            _now_ms() if now_ms is None else now_ms,
        )
        out = Export(content, name, "application/pdf")
    audit(
        scope.user,
        f"tax.filing.export.{fmt}",
        detail(filing=f.id, tenant=f.tenant, amended=status.amended, sha256=out.sha256),
    )
    return out
