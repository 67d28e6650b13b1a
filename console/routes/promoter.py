"""A promoter's pages and API: their events' footfall per hour, promo-code redemptions and
takings (the event's total always; per stall only for the tenants that opted in).

The figures are :mod:`console.reports.promoter`'s (which keeps every statement to the
promoter's events, ``Scope.event_filter``); this module answers its refusals with their
statuses (:func:`console.errors.from_reports`) and draws the footfall as columns.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from console import charts
from console.auth import Session
from console.errors import from_reports
from console.reports.promoter import event_report, promoter_events
from console.web import page, signed_in, store
from edge.store import Store

router = APIRouter()
NAV = [("promoter", "My events", "/promoter")]

FROM_Q = Query(None, alias="from", description="first day, YYYY-MM-DD (UTC); with to")
TO_Q = Query(None, description="last day, YYYY-MM-DD (UTC), included; with from")


def events_data(session: Session) -> dict[str, Any]:
    scope = session.scope.allow("promoter")
    with from_reports():
        return {"events": list(promoter_events(scope))}


def event_data(
    db: Store, session: Session, event_id: str, start: str | None, end: str | None
) -> dict[str, Any]:
    scope = session.scope.allow("promoter")
    with from_reports():
        return event_report(db, scope, event_id, start or None, end or None).to_json()


@router.get("/api/v1/promoter/events")
def events_api(session: Session = Depends(signed_in)) -> dict[str, Any]:
    """The events this promoter was given."""
    return events_data(session)


@router.get("/api/v1/promoter/events/{event_id}")
def event_api(
    event_id: str,
    start: str | None = FROM_Q,
    to: str | None = TO_Q,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """An event's footfall per hour (completed sales: every hour from the first to the
    last, quiet ones 0), promo-code redemptions, takings per currency, and takings per
    stall of the tenants that opted in."""
    return event_data(db, session, event_id, start, to)


@router.get("/promoter", include_in_schema=False)
def events_page(request: Request, session: Session = Depends(signed_in)) -> Response:
    return page(request, session, "promoter.html", **events_data(session))


@router.get("/promoter/events/{event_id}", include_in_schema=False)
def event_page(
    request: Request,
    event_id: str,
    start: str | None = Query(None, alias="from"),
    to: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = event_data(db, session, event_id, start, to)
    chart = charts.column_chart(
        [(f"{h['hour']:02d}", h["day"], h["sales"]) for h in data["footfall"]],
        f"sales per hour at {data['event_id']} (UTC)",
    )
    return page(request, session, "promoter_event.html", **data, asked=data, chart=chart)
