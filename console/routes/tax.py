"""The tax reporter's pages and API: the tax ledger per tax profile, rate and period (a
day range, a month, an event), its CSV and PDF exports, and filing a period (locked
then, with the amendments late offline sales make to it shown).

The figures, exports and filings are :mod:`console.reports`' (which checks its own
role too); this module reads what was typed into a :class:`Period`, answers the
library's refusals with their statuses (:func:`console.errors.from_reports`: 400, 409,
404) and hands every export and filing the audit hook (:func:`console.audit.hook`), so
each one is in the audit log with the SHA-256 of the bytes handed out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from console import audit, forms, queries
from console.auth import Session
from console.errors import from_reports
from console.reports import pdf
from console.reports.exports import Export, export_filing, export_ledger
from console.reports.filing import (
    FilingStatus,
    file_period,
    filing_status,
    filings_touching,
    list_filings,
)
from console.reports.period import Period, ReportInputError, check_ident
from console.reports.tax import TaxLedger, rate_label, tax_ledger
from console.scope import Scope
from console.web import client_of, page, signed_in, store, templates
from edge.store import Store

router = APIRouter()
NAV = [("tax", "Tax ledger", "/tax"), ("tax", "Filings", "/tax/filings")]

templates.env.filters["amount"] = pdf.amount  # minor units as major with two decimals
templates.env.filters["rate"] = rate_label

TENANT_Q = Query(None, description="the tenant whose ledger it is")
FROM_Q = Query(None, alias="from", description="first day, YYYY-MM-DD (UTC), included")
TO_Q = Query(None, description="last day, YYYY-MM-DD (UTC), included")
MONTH_Q = Query(None, description="a calendar month YYYY-MM (instead of from and to)")
EVENT_Q = Query(None, description="only the sales of the tills at this event")
PROFILE_Q = Query(None, description="only this tax profile (jurisdiction)")


# -- reading what was asked ---------------------------------------------------------------
@dataclass(frozen=True)
class LedgerAsk:
    """What a ledger read asks for (the API, its exports and the page alike): a tenant,
    a period (``month``, or ``start``..``end``, optionally of one event) and a tax
    profile, as typed; :func:`period_of` and the reports library check them."""

    tenant: str | None = None
    start: str | None = None
    end: str | None = None
    month: str | None = None
    event: str | None = None
    tax_profile: str | None = None


def ledger_ask(
    tenant: str | None = TENANT_Q,
    start: str | None = FROM_Q,
    to: str | None = TO_Q,
    month: str | None = MONTH_Q,
    event: str | None = EVENT_Q,
    tax_profile: str | None = PROFILE_Q,
) -> LedgerAsk:
    """The query parameters of every ledger route, read once (a FastAPI dependency)."""
    return LedgerAsk(tenant, start, to, month, event, tax_profile)


def period_of(
    db: Store,
    scope: Scope,
    tenant: str,
    start: str | None,
    end: str | None,
    month: str | None,
    event: str | None,
) -> Period:
    """The period asked for: ``month``, or ``from``..``to``, each optionally of one event;
    an event without days is every day its tills sold there."""
    event_id = check_ident(event, "event") if event else None
    if month:
        if start or end:
            raise ReportInputError("give a month, or from and to, not both")
        return Period.month(month, event_id)
    if not start and not end and event_id is not None:
        days = queries.event_days(db, scope, tenant, event_id)
        if days is None:
            today = forms.today().isoformat()
            return Period(today, today, event_id)
        return Period(days[0], days[1], event_id)
    return Period.days(start, end, event_id)


def _ledger(db: Store, session: Session, ask: LedgerAsk) -> TaxLedger:
    scope = session.scope.allow("tax")
    with from_reports():
        chosen = check_ident(ask.tenant, "tenant")
        period = period_of(db, scope, chosen, ask.start, ask.end, ask.month, ask.event)
        return tax_ledger(db, scope, chosen, period, ask.tax_profile or None)


def _download(out: Export) -> Response:
    return Response(
        out.content,
        media_type=out.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{out.filename}"',
            "X-Content-SHA256": out.sha256,
            "Cache-Control": "no-store",
        },
    )


def _filing_id(text: str) -> int:
    return forms.whole(text, "filing", 1, 2**63 - 1)


# -- the ledger ---------------------------------------------------------------------------
class TaxRowOut(BaseModel):
    tax_profile: str
    rate_bp: int = Field(description="the rate in basis points (2000 is 20 %)")
    net_minor: int
    tax_minor: int
    gross_minor: int


class TaxOut(BaseModel):
    rows: list[TaxRowOut]
    total_gross_minor: int


@router.get("/api/v1/tax", response_model=TaxOut)
def tax_api(
    ask: LedgerAsk = Depends(ledger_ask),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """The tenant's tax ledger per tax profile and rate over the period (from the rollups
    ingest keeps; a refund counts under the refunded sale's profile, on its own day)."""
    return _ledger(db, session, ask).to_json()


def _export_route(fmt: str) -> Any:
    def export(
        request: Request,
        ask: LedgerAsk = Depends(ledger_ask),
        session: Session = Depends(signed_in),
        db: Store = Depends(store),
    ) -> Response:
        ledger = _ledger(db, session, ask)
        scope = session.scope
        with from_reports():
            out = export_ledger(
                db,
                scope,
                ledger.tenant,
                ledger.period,
                fmt,
                audit=audit.hook(db, scope, client_of(request)),
                tax_profile=ask.tax_profile or None,
            )
        return _download(out)

    export.__doc__ = (
        f"The ledger as {fmt.upper()} (the same read as GET /api/v1/tax); every export is "
        "in the audit log with the SHA-256 of its bytes."
    )
    return export


_KIND = {"csv": "text/csv", "pdf": "application/pdf"}
for _fmt in ("csv", "pdf"):
    router.add_api_route(
        f"/api/v1/tax/export.{_fmt}",
        _export_route(_fmt),
        methods=["GET"],
        response_class=Response,
        responses={200: {"content": {_KIND[_fmt]: {}}, "description": f"the {_fmt} file"}},
        name=f"tax_export_{_fmt}",
    )


def _ledger_page_data(db: Store, session: Session, ask: LedgerAsk) -> dict[str, Any]:
    scope = session.scope.allow("tax")
    tenants = queries.report_tenants(db, scope, "tax")
    if not ask.tenant:
        return {"tenants": tenants, "tenant": None, "asked": _asked(ask)}
    if not (ask.start or ask.end or ask.month or ask.event):
        ask = replace(ask, month=forms.today().strftime("%Y-%m"))  # opens on this month
    asked = _asked(ask)
    ledger = _ledger(db, session, ask)
    with from_reports():
        touching = filings_touching(db, scope, ledger.tenant, ledger.period)
    today = forms.today().isoformat()
    fileable = []
    if ledger.period.event_id is None:
        for profile in sorted({r.tax_profile for r in ledger.rows}):
            clash = [s.filing for s in touching if s.filing.tax_profile == profile]
            if clash:
                why = f"filed (filing {clash[0].id}, {clash[0].start}..{clash[0].end})"
            elif ledger.period.end >= today:
                why = f"{ledger.period.end} is not over yet"
            else:
                why = ""
            fileable.append({"tax_profile": profile, "why_not": why})
    query = urlencode({"tenant": ledger.tenant, **{k: v for k, v in asked.items() if v}})
    return {
        "tenants": tenants,
        "tenant": ledger.tenant,
        "asked": asked,
        "ledger": ledger,
        "period": ledger.period,
        "filings": touching,
        "fileable": fileable,
        "query": query,
    }


def _asked(ask: LedgerAsk) -> dict[str, str | None]:
    """The page's form fields as asked, under their query names."""
    return {
        "from": ask.start,
        "to": ask.end,
        "month": ask.month,
        "event": ask.event,
        "tax_profile": ask.tax_profile,
    }


@router.get("/tax", include_in_schema=False)
def tax_page(
    request: Request,
    ask: LedgerAsk = Depends(ledger_ask),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = _ledger_page_data(db, session, ask)
    return page(request, session, "tax.html", **data)


# -- filing -------------------------------------------------------------------------------
def _file(
    db: Store,
    session: Session,
    request: Request,
    tenant: str | None,
    tax_profile: str | None,
    start: str | None,
    end: str | None,
) -> Any:
    scope = session.scope.allow("tax.file")
    with from_reports():
        return file_period(
            db,
            scope,
            check_ident(tenant, "tenant"),
            check_ident(tax_profile, "tax profile"),
            Period.days(start, end),
            audit=audit.hook(db, scope, client_of(request)),
        )


@router.post("/tax/file", include_in_schema=False)
def file_form(
    request: Request,
    tenant: str = Form(""),
    tax_profile: str = Form(""),
    start: str = Form("", alias="from"),
    to: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    filed = _file(db, session, request, tenant, tax_profile, start, to)
    return RedirectResponse(f"/tax/filings/{filed.id}?filed=1", status_code=303)


class NewFiling(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    tenant: str = Field(max_length=64)
    tax_profile: str = Field(max_length=64)
    from_: str = Field(alias="from", max_length=10, description="first day, YYYY-MM-DD")
    to: str = Field(max_length=10, description="last day, YYYY-MM-DD (before today)")


@router.post("/api/v1/tax/filings")
def file_api(
    body: NewFiling,
    request: Request,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Mark a period of a tenant's tax profile filed, with its rows as they are now: it is
    locked then (409 for a period that overlaps a filing or has not ended). X-CSRF-Token."""
    filed = _file(db, session, request, body.tenant, body.tax_profile, body.from_, body.to)
    return filed.to_json()


def _filings(db: Store, session: Session, tenant: str | None) -> list[FilingStatus]:
    scope = session.scope.allow("tax")
    with from_reports():
        chosen = check_ident(tenant, "tenant") if tenant else None
        return [filing_status(db, scope, f.id) for f in list_filings(db, scope, chosen)]


@router.get("/api/v1/tax/filings")
def filings_api(
    tenant: str | None = Query(None, description="only this tenant's filings"),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Every filing, newest period first, each as filed, with the figures now and the
    amendment late sales made to it."""
    return {"filings": [s.to_json() for s in _filings(db, session, tenant)]}


def _status(db: Store, session: Session, filing_id: str) -> FilingStatus:
    scope = session.scope.allow("tax")
    number = _filing_id(filing_id)
    with from_reports():
        return filing_status(db, scope, number)


@router.get("/api/v1/tax/filings/{filing_id}")
def filing_api(
    filing_id: str, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> dict[str, Any]:
    """One filing: as filed (never changes), the figures now, the amendment and each late
    sale or refund that makes it."""
    return _status(db, session, filing_id).to_json()


def _filing_export_route(fmt: str) -> Any:
    def export(
        request: Request,
        filing_id: str,
        session: Session = Depends(signed_in),
        db: Store = Depends(store),
    ) -> Response:
        scope = session.scope.allow("tax")
        number = _filing_id(filing_id)
        with from_reports():
            out = export_filing(
                db, scope, number, fmt, audit=audit.hook(db, scope, client_of(request))
            )
        return _download(out)

    export.__doc__ = f"A filing as {fmt.upper()}: as filed, amendment, late sales, figures now."
    return export


for _fmt in ("csv", "pdf"):
    router.add_api_route(
        f"/api/v1/tax/filings/{{filing_id}}/export.{_fmt}",
        _filing_export_route(_fmt),
        methods=["GET"],
        response_class=Response,
        responses={200: {"content": {_KIND[_fmt]: {}}, "description": f"the {_fmt} file"}},
        name=f"tax_filing_export_{_fmt}",
    )


@router.get("/tax/filings", include_in_schema=False)
def filings_page(
    request: Request,
    tenant: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    statuses = _filings(db, session, tenant)
    tenants = queries.report_tenants(db, session.scope, "tax")
    return page(
        request, session, "tax_filings.html", filings=statuses, tenants=tenants, tenant=tenant
    )


@router.get("/tax/filings/{filing_id}", include_in_schema=False)
def filing_page(
    request: Request,
    filing_id: str,
    filed: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    status = _status(db, session, filing_id)
    return page(request, session, "tax_filing.html", state=status, just_filed=bool(filed))
