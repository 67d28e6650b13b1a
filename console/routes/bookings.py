"""Bookings and pre-orders from a merchant's microsite: the JSON API that creates them.

A merchant's web shop (or the merchant, from a script) signs in as the merchant
(``POST /api/v1/session``), then posts each booking with the session's CSRF token in
``X-CSRF-Token``, as every state-changing request of the console does:

* ``POST /api/v1/bookings`` adds the booking to the tenant's list through the edge's own
  code (``edge.regionlists.add_booking``: one writer at a time, the list checked as a
  till checks it, signed with the region key) and answers the booking, the customer's QR
  payload (``TBB1``, for the confirmation e-mail) and whether the list was published.
  With broker settings (``--broker``) the signed list goes out at once, retained on
  ``tillbox/v1/{tenant}/region/bookings`` where the stall's tills pick it up; without,
  or when the broker is down, it is kept and ``tillbox edge booking publish`` (or the
  next booking) sends it.
* ``GET /api/v1/bookings?tenant`` lists the tenant's bookings as kept.

A merchant books for their own tenant only; an admin for any. Every booking is audited.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from appliance.errors import RuleViolation, TillError
from appliance.formats.region import BOOKINGS
from console import audit, forms
from console.auth import Session
from console.errors import BadInput
from console.routes.inspector import region_key
from console.web import client_of, signed_in, store
from edge import regionlists
from edge.store import Store

log = logging.getLogger("tillbox.console")

router = APIRouter()
NAV: list[tuple[str, str, str]] = []  # an API for the merchant's microsite: no page


class BookingItemIn(BaseModel):
    sku: str = Field(max_length=64)
    qty: int
    engraving: str | None = Field(None, max_length=200)


class BookingIn(BaseModel):
    tenant: str | None = Field(None, max_length=64, description="a merchant's own by default")
    name: str = Field(max_length=200, description="the customer's name, as the stall sees it")
    payment: str = Field(description="paid_online | pay_at_pickup")
    items: list[BookingItemIn] = Field(max_length=50)
    stall: str = Field("", max_length=64, description="the stall that hands it over; '' any")
    id: str | None = Field(None, max_length=64, description="the shop's order id (unique)")
    number: int | None = Field(None, description="the number the cashier types; next free")


def _tenant(session: Session, asked: str | None) -> str:
    scope = session.scope.allow("bookings")
    tenant = scope.pick_tenant(forms.ident(asked, "tenant"))
    if tenant is None:
        raise BadInput("give the tenant the booking is for (tenant)")
    return tenant


def publish(request: Request, kept: regionlists.Kept) -> dict[str, Any]:
    """Send the signed list retained to the tenant's tills, or say why it was kept only."""
    publisher = request.app.state.publisher
    if publisher is None:
        return {
            "sent": False,
            "message": "kept, not sent: the console has no broker settings (--broker); "
            f"send it with `tillbox edge booking publish --tenant {kept.tenant} --broker URL`",
        }
    try:
        publisher.send_bytes(kept.topic, kept.data)
    except (TillError, OSError) as exc:
        log.warning("bookings of %s not published: %s", kept.tenant, exc)
        return {"sent": False, "message": f"kept, not sent yet: {exc}"}
    return {"sent": True, "message": f"published retained on {kept.topic}", "topic": kept.topic}


def add_data(request: Request, db: Store, session: Session, body: BookingIn) -> dict[str, Any]:
    tenant = _tenant(session, body.tenant)
    key = region_key(request)
    booking: dict[str, Any] = {
        "name": body.name,
        "payment": body.payment,
        "items": [i.model_dump(exclude_none=True) for i in body.items],
        "stall": body.stall,
    }
    for optional in ("id", "number"):
        if getattr(body, optional) is not None:
            booking[optional] = getattr(body, optional)
    try:
        kept, added, qr = regionlists.add_booking(db, key, tenant, booking)
    except RuleViolation as exc:
        raise BadInput(str(exc)) from None
    audit.record(
        db,
        session.scope,
        "booking.add",
        added.id,
        tenant=tenant,
        detail=f"booking {added.number} ({added.payment}), list version {kept.version}",
        client=client_of(request),
    )
    return {
        "booking": added.to_json(),
        "qr": qr,
        "version": kept.version,
        "published": publish(request, kept),
    }


@router.post("/api/v1/bookings")
def add_api(
    request: Request,
    body: BookingIn = Body(...),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Add a booking to the tenant's list (signed with the region key) and send it to the
    stall's tills; the answer carries the customer's QR payload."""
    return add_data(request, db, session, body)


@router.get("/api/v1/bookings")
def list_api(
    request: Request,
    tenant: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """The tenant's bookings as kept (and published) by the region."""
    chosen = _tenant(session, tenant)
    kept = regionlists.kept(db, chosen, BOOKINGS)
    listed = regionlists.kept_bookings(db, region_key(request), chosen)
    return {
        "tenant": chosen,
        "version": kept.version if kept else 0,
        "bookings": listed.to_json()["bookings"],
    }
