"""The front door: ``/`` sends a signed-in user to their first page, others to sign in."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from console.auth import Session
from console.web import current_session, page

router = APIRouter()
NAV: list[tuple[str, str, str]] = []
# A role's own work comes first, before pages it shares with others (a tax reporter
# may verify receipts too, but signs in to the ledger, not to the merchant's tools).
OWN_AREA = {"tax": "tax", "inspector": "inspector", "promoter": "promoter", "technician": "fleet"}


@router.get("/", include_in_schema=False)
def home(request: Request, session: Session | None = Depends(current_session)) -> Response:
    if session is None:
        return RedirectResponse("/login", status_code=303)
    own = OWN_AREA.get(session.scope.role)
    nav = request.app.state.nav
    for area, _label, path in [*(n for n in nav if n[0] == own), *nav]:
        if session.scope.may(area):
            return RedirectResponse(path, status_code=303)
    return page(request, session, "empty.html")
