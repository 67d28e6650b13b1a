"""A merchant's pages and their API: sales, refunds, stock, card exposure, receipts.

Each page has a data function shared by its HTML route and its ``/api/v1/`` route, so the
browser and a script see the same numbers. Region-wide roles (admin) may pick a tenant
with ``?tenant=``; a merchant always sees their own, and asking for another is 403.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from appliance.boundedio import TooLarge as FileTooLarge
from appliance.boundedio import read_stream
from appliance.money import format_minor
from console import audit, charts, fleet, forms, queries, receipts, tables
from console.auth import Session, now_ms
from console.errors import BadInput, Missing
from console.reports import settings
from console.web import client_of, page, signed_in, store
from edge import admin as edge_admin
from edge.store import Store

router = APIRouter()
NAV = [
    ("sales", "Sales", "/sales"),
    ("refunds", "Refunds", "/refunds"),
    ("stock", "Stock", "/stock"),
    ("exposure", "Card exposure", "/exposure"),
    ("receipts", "Receipts", "/receipts"),
    ("verify", "Verify a receipt", "/verify"),
]

TENANT_Q = Query(None, description="tenant id (region-wide roles; a merchant sees their own)")
FROM_Q = Query(None, alias="from", description="first day, YYYY-MM-DD (UTC)")
TO_Q = Query(None, description="last day, YYYY-MM-DD (UTC), included")


# -- sales --------------------------------------------------------------------------------
def sales_data(
    db: Store,
    session: Session,
    tenant: str | None,
    start: str | None,
    end: str | None,
    group: str | None,
) -> dict[str, Any]:
    scope = session.scope.allow("sales")
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    group = forms.choice(group, "group", tuple(queries.SALES_GROUPS), "till")
    first, last = forms.period(start, end)
    rows = queries.sales(db, scope, chosen, first.isoformat(), last.isoformat(), group)
    totals: dict[str, dict[str, int]] = {}
    for r in rows:
        t = totals.setdefault(
            r["currency"], {"sales": 0, "gross_minor": 0, "refunds": 0, "refund_minor": 0}
        )
        for k in t:
            t[k] += r[k]
    return {
        "tenant": chosen,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "group": group,
        "rows": rows,
        "totals": [
            {"currency": c, **t, "net_minor": t["gross_minor"] - t["refund_minor"]}
            for c, t in sorted(totals.items())
        ],
        "top_items": queries.top_items(db, scope, chosen, first.isoformat(), last.isoformat()),
    }


@router.get("/sales", include_in_schema=False)
def sales_page(
    request: Request,
    tenant: str | None = None,
    start: str | None = Query(None, alias="from"),
    to: str | None = None,
    group: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = sales_data(db, session, tenant, start, to, group)
    sharing = settings.stall_sharing(db, session.scope, data["tenant"]) if data["tenant"] else None
    currency = data["totals"][0]["currency"] if data["totals"] else "EUR"
    chart = charts.bar_chart(
        [(str(r["key"]), r["gross_minor"]) for r in data["rows"]][:40],
        f"takings per {data['group']}",
        lambda v: format_minor(v, currency),
    )
    items_chart = charts.bar_chart(
        [(i["name"] or i["sku"], i["gross_minor"]) for i in data["top_items"]],
        "top items by takings",
        lambda v: format_minor(v, currency),
    )
    return page(
        request,
        session,
        "sales.html",
        **data,
        groups=list(queries.SALES_GROUPS),
        sharing=sharing,
        chart=chart,
        items_chart=items_chart,
    )


@router.get("/api/v1/sales")
def sales_api(
    tenant: str | None = TENANT_Q,
    start: str | None = FROM_Q,
    to: str | None = TO_Q,
    group: str | None = Query(None, description="stall, till, event, day or hour"),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Sales, takings and refunds per group over a period, from the edge's rollups, with
    the top items."""
    return sales_data(db, session, tenant, start, to, group)


# -- refunds ------------------------------------------------------------------------------
def refunds_data(
    db: Store, session: Session, tenant: str | None, start: str | None, end: str | None
) -> dict[str, Any]:
    scope = session.scope.allow("refunds")
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    first, last = forms.period(start, end)
    return {
        "tenant": chosen,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "per_till_day": queries.refund_summary(
            db, scope, chosen, first.isoformat(), last.isoformat()
        ),
        "refunds": queries.refunds(
            db, scope, chosen, forms.day_ms(first), forms.day_ms(last + timedelta(days=1))
        ),
    }


@router.get("/refunds", include_in_schema=False)
def refunds_page(
    request: Request,
    tenant: str | None = None,
    start: str | None = Query(None, alias="from"),
    to: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    return page(request, session, "refunds.html", **refunds_data(db, session, tenant, start, to))


@router.get("/api/v1/refunds")
def refunds_api(
    tenant: str | None = TENANT_Q,
    start: str | None = FROM_Q,
    to: str | None = TO_Q,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Refunds per till and day (rollups) and each refund receipt of the period."""
    return refunds_data(db, session, tenant, start, to)


# -- stock --------------------------------------------------------------------------------
def stock_data(db: Store, session: Session, tenant: str | None) -> dict[str, Any]:
    scope = session.scope.allow("stock")
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    flags = queries.stock_flags(db, scope, chosen)
    return {
        "tenant": chosen,
        "levels": queries.stock(db, scope, chosen),
        "open_flags": [f for f in flags if f["resolution"] is None],
        "resolved_flags": [f for f in flags if f["resolution"] is not None],
        "adjustments": queries.stock_adjustments(db, scope, chosen),
    }


def count_stock(
    db: Store, session: Session, tenant: str | None, sku: str | None, qty: Any, note: str | None
) -> dict[str, Any]:
    """A counted level with its note: the edge's stock-count rule (``edge.admin.record_count``,
    what ``tillbox edge stock-set`` runs: an adjustment explains the change, the SKU is
    then tracked), the SKU's open negative-stock flags resolved by it and the audit row,
    in one transaction."""
    scope = session.scope.allow("stock.count")
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    if chosen is None:
        raise BadInput("tenant is missing; say whose stock was counted")
    sku = forms.ident(sku, "SKU", required=True)
    counted = forms.whole(qty, "counted quantity", 0, 10**9)
    text = forms.note(note)
    if queries.stock_item(db, scope, chosen, sku) is None:
        raise Missing(f"{sku} is not in the stock ledger of {chosen}; check the SKU")
    with db.transaction():
        delta = edge_admin.record_count(db, chosen, sku, counted, f"{text} ({scope.user})")
        resolved = tables.resolve_flags(db, chosen, sku, now_ms(), scope.user, text, counted)
        audit.record(
            db,
            scope,
            "stock.count",
            sku,
            tenant=chosen,
            detail=f"counted {counted} ({delta:+d}), {resolved} flag(s) resolved: {text}",
        )
    return {"tenant": chosen, "sku": sku, "qty": counted, "delta": delta, "resolved": resolved}


@router.get("/stock", include_in_schema=False)
def stock_page(
    request: Request,
    tenant: str | None = None,
    done: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = stock_data(db, session, tenant)
    done_sku = forms.ident(done, "done") if done else None
    return page(request, session, "stock.html", **data, done=done_sku)


@router.post("/stock/count", include_in_schema=False)
def stock_count_form(
    tenant: str = Form(""),
    sku: str = Form(""),
    qty: str = Form(""),
    note: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    out = count_stock(db, session, tenant or None, sku, qty, note)
    back = f"/stock?done={out['sku']}"
    if session.scope.tenant is None:
        back += f"&tenant={out['tenant']}"
    return RedirectResponse(back, status_code=303)


@router.get("/api/v1/stock")
def stock_api(
    tenant: str | None = TENANT_Q,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """The stock ledger: levels, negative-stock flags (open and resolved), adjustments."""
    return stock_data(db, session, tenant)


class StockCount(BaseModel):
    tenant: str | None = Field(None, max_length=64)
    sku: str = Field(max_length=64)
    qty: int = Field(ge=0, le=10**9)
    note: str = Field(max_length=500)


@router.post("/api/v1/stock/count")
def stock_count_api(
    body: StockCount, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> dict[str, Any]:
    """Record a counted stock level with its note; resolves the SKU's negative-stock flags.
    Needs the X-CSRF-Token header."""
    return count_stock(db, session, body.tenant, body.sku, body.qty, body.note)


# -- offline card exposure ----------------------------------------------------------------
def exposure_data(db: Store, session: Session, tenant: str | None) -> dict[str, Any]:
    scope = session.scope.allow("exposure")
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    now = now_ms()
    tills = [fleet.health(row, now) for row in queries.exposure(db, scope, chosen)]
    return {
        "tenant": chosen,
        "tills": [
            {
                k: t[k]
                for k in (
                    "device_id",
                    "tenant",
                    "stall",
                    "last_seen_ms",
                    "card_exposure_minor",
                    "currency",
                    "silent",
                )
            }
            for t in tills
        ],
    }


@router.get("/exposure", include_in_schema=False)
def exposure_page(
    request: Request,
    tenant: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = exposure_data(db, session, tenant)
    chart = charts.bar_chart(
        [(t["device_id"], t["card_exposure_minor"] or 0) for t in data["tills"]],
        "unsynced card payments per till",
        lambda v: format_minor(v, data["tills"][0]["currency"] if data["tills"] else "EUR"),
    )
    return page(request, session, "exposure.html", **data, chart=chart)


@router.get("/api/v1/exposure")
def exposure_api(
    tenant: str | None = TENANT_Q, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> dict[str, Any]:
    """Offline card exposure per till: card payments a till holds that the region has not
    received yet, as the till last reported it (telemetry)."""
    return exposure_data(db, session, tenant)


# -- receipts -----------------------------------------------------------------------------
def search_data(db: Store, session: Session, q: str | None, tenant: str | None) -> dict[str, Any]:
    scope = session.scope.allow("receipts")
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    kind, value = forms.receipt_query(q)
    if kind == "number":
        found = queries.receipts_by_number(db, scope, chosen, int(value))
    elif kind == "code":
        found = queries.receipts_by_code(db, scope, str(value))
    else:
        found = []
    return {"q": q or "", "by": kind, "tenant": chosen, "receipts": found}


@router.get("/receipts", include_in_schema=False)
def receipts_page(
    request: Request,
    q: str | None = None,
    tenant: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    return page(request, session, "receipts.html", **search_data(db, session, q, tenant))


@router.get("/api/v1/receipts")
def receipts_api(
    q: str | None = Query(None, description="a receipt number, or the short code (ABCDE-FGHIJ)"),
    tenant: str | None = TENANT_Q,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Find receipts by number (every till of the tenant) or by the code under the QR."""
    return search_data(db, session, q, tenant)


def receipt_data(
    db: Store, session: Session, device_id: str, number: str, client: str
) -> dict[str, Any]:
    scope = session.scope.allow("receipts")
    device_id = forms.ident(device_id, "till", required=True) or ""
    receipt_no = forms.whole(number, "receipt number", 1, 10**15)
    queries.device(db, scope, device_id)  # another tenant's till: 403, not "not found"
    found = queries.receipt(db, scope, device_id, receipt_no)
    if found is None:
        raise Missing(f"no receipt {receipt_no} of till {device_id} in your scope")
    audit.record(
        db,
        scope,
        "receipt.view",
        f"{device_id}/{receipt_no}",
        tenant=found["tenant"],
        client=client,
    )
    return found


@router.get("/receipts/{device_id}/{receipt_no}", include_in_schema=False)
def receipt_page(
    request: Request,
    device_id: str,
    receipt_no: str,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    found = receipt_data(db, session, device_id, receipt_no, client_of(request))
    return page(request, session, "receipt.html", receipt=found)


@router.get("/api/v1/receipts/{device_id}/{receipt_no}")
def receipt_api(
    request: Request,
    device_id: str,
    receipt_no: str,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """One receipt with its lines, as the region stored it (the view is audited)."""
    return receipt_data(db, session, device_id, receipt_no, client_of(request))


# -- verification -------------------------------------------------------------------------
def verify_data(db: Store, session: Session, payload: str, client: str) -> dict[str, Any]:
    scope = session.scope.allow("verify")
    if not payload.strip():
        raise BadInput("paste the text of the receipt's QR code (it starts with TB2*)")
    if len(payload) > 2048:
        raise BadInput("that is longer than any receipt QR code; paste only the code's text")
    verdict = receipts.verify_payload(db, scope, payload)
    audit.record(
        db,
        scope,
        "receipt.verify",
        f"{verdict.fields.get('device_id', '?')}/{verdict.fields.get('receipt_no', '?')}",
        detail="genuine" if verdict.ok else verdict.message[:200],
        client=client,
    )
    return verdict.to_json()


@router.get("/verify", include_in_schema=False)
def verify_page(request: Request, session: Session = Depends(signed_in)) -> Response:
    session.scope.allow("verify")
    return page(request, session, "verify.html", verdict=None, payload="", error="")


@router.post("/verify", include_in_schema=False)
async def verify_form(
    request: Request,
    payload: str = Form(""),
    photo: UploadFile | None = File(None),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    session.scope.allow("verify")
    error = ""
    if photo is not None and photo.filename:
        try:
            data = read_stream(photo.file, receipts.UPLOAD_LIMIT, "the photo")
        except FileTooLarge:
            from console.errors import TooLarge

            raise TooLarge(
                f"the photo is larger than {receipts.UPLOAD_LIMIT >> 20} MiB; send a smaller one"
            ) from None
        payload, error = await run_in_threadpool(receipts.payload_from_photo, data)
    if error:
        return page(
            request, session, "verify.html", status=422, verdict=None, payload="", error=error
        )
    verdict = await run_in_threadpool(verify_data, db, session, payload, client_of(request))
    return page(request, session, "verify.html", verdict=verdict, payload=payload, error="")


class ReceiptPayload(BaseModel):
    payload: str = Field(max_length=2048, description="the QR code's text (TB2*... or TB1*...)")


@router.post("/api/v1/receipts/verify")
def verify_api(
    body: ReceiptPayload,
    request: Request,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Check a receipt's QR payload: the till's signature and the region's copy."""
    return verify_data(db, session, body.payload, client_of(request))
