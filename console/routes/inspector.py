"""The inspector's pages and API, read-only, scoped to their stalls and events: each till's
enrollment manifests with their permit scans and geotagged photos, its self-test
history, its events and the region's acks, and an inspection package the region builds
and signs for them, with a nonce they choose.

Which tills an inspector sees is decided in the SQL (``console.queries.inspected_*``):
the tills at one of their stalls (``Scope.stalls``, the device's profile) or that sold
at one of their events (``Scope.events``). Another till is 403. The enrollment files are
served by :func:`media` to the inspector and to the admin who reviews them, each with
the content type of its name and never more than a scan's limit. Every device page view
and every package is in the audit log.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from appliance.errors import NotFound, TillError
from appliance.formats.inspection import NONCE_MAX
from console import audit, enrollment_view, forms, queries
from console.auth import Session, now_ms
from console.errors import BadInput, Missing, Unavailable
from console.web import client_of, page, signed_in, store
from edge.enrollments import get_enrollment
from edge.store import Store

router = APIRouter()
NAV = [("inspector", "Inspection", "/inspector")]

EVENTS_PAGE = 50
SELFTESTS_SHOWN = 20
ACKS_SHOWN = 50


def region_key(request: Request) -> Any:
    """The region's signing key (``--key``): it signs packages and reviews."""
    from appliance.keys import load_signing_key

    path = request.app.state.region_key_path
    if path is None:
        raise Unavailable(
            "the console was started without the region key; start it with --key FILE"
        )
    try:
        return load_signing_key(Path(path))
    except TillError as exc:
        raise Unavailable(str(exc)) from None


def _device(db: Store, session: Session, device_id: str, area: str = "inspector") -> dict:
    scope = session.scope.allow(area)
    device_id = forms.ident(device_id, "till", required=True) or ""
    found = queries.inspected_device(db, scope, device_id, area)
    if found is None:
        raise Missing(f"the region has no till {device_id}")
    return found


def _selftest(event: dict[str, Any]) -> dict[str, Any]:
    p = event["payload"]
    checks = p.get("checks") if isinstance(p.get("checks"), list) else []
    return {
        "seq": event["seq"],
        "wall_ms": event["wall_ms"],
        "verdict": str(p.get("verdict", "")),
        "trigger": str(p.get("trigger", "")),
        "checks": [
            {
                "name": str(c.get("name", "")),
                "result": str(c.get("result", "")),
                "value": str(c.get("value", "")),
            }
            for c in checks
            if isinstance(c, dict)
        ],
    }


def _event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in ("seq", "type", "hash", "wall_ms")}


def devices_data(db: Store, session: Session) -> dict[str, Any]:
    scope = session.scope.allow("inspector")
    devices = queries.inspected_devices(db, scope)
    selftests = queries.last_selftests(db, scope)
    for d in devices:
        latest = get_enrollment(db, d["device_id"])
        d["enrollment"] = latest.status if latest else None
        last = selftests.get(d["device_id"])
        d["selftest"] = _selftest(last) if last else None
    return {"devices": devices}


def device_data(
    db: Store, session: Session, device_id: str, before: str | None, client: str
) -> dict[str, Any]:
    found = _device(db, session, device_id)
    scope = session.scope
    device_id = found["device_id"]
    before_seq = forms.whole(before, "before", 1) if before else None
    audit.record(db, scope, "inspector.view", device_id, tenant=found["tenant"], client=client)
    return {
        "device": found,
        "enrollments": [
            enrollment_view.describe(db, r) for r in enrollment_view.enrollments_of(db, device_id)
        ],
        "selftests": [
            _selftest(e) for e in queries.device_selftests(db, scope, device_id, SELFTESTS_SHOWN)
        ],
        "events": [
            _event(e) for e in queries.device_events(db, scope, device_id, before_seq, EVENTS_PAGE)
        ],
        "acks": queries.device_acks(db, scope, device_id, ACKS_SHOWN),
    }


@router.get("/inspector", include_in_schema=False)
def devices_page(
    request: Request, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    return page(request, session, "inspector.html", **devices_data(db, session))


@router.get("/inspector/devices/{device_id}", include_in_schema=False)
def device_page(
    request: Request,
    device_id: str,
    before: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = device_data(db, session, device_id, before, client_of(request))
    return page(request, session, "inspector_device.html", **data, nonce_max=NONCE_MAX)


@router.get("/api/v1/inspector/devices")
def devices_api(session: Session = Depends(signed_in), db: Store = Depends(store)) -> dict:
    """The tills at the inspector's stalls and events: enrollment status, last self-test,
    events stored."""
    return devices_data(db, session)


@router.get("/api/v1/inspector/devices/{device_id}")
def device_api(
    request: Request,
    device_id: str,
    before: str | None = Query(None, description="events below this sequence number"),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """One till: its enrollment manifests (with their files and reviews), its self-test
    history, its latest events and the segments the region stored and acked."""
    return device_data(db, session, device_id, before, client_of(request))


# -- the enrollment files -----------------------------------------------------------------
def media(db: Store, session: Session, device_id: str, sha256: str) -> Response:
    _device(db, session, device_id, "enrollment.media")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise Missing("a file is named by its SHA-256: 64 lowercase hex digits")
    found = enrollment_view.media_file(db, device_id, sha256)
    if found is None:
        raise Missing(f"no enrollment of till {device_id} lists a file {sha256[:16]}…")
    blob, kind, name = found
    inline = kind in enrollment_view.INLINE
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100]
    return Response(
        blob,
        media_type=kind if inline else "application/octet-stream",
        headers={
            "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{safe}"',
            # the till's file, served from the console's origin: it may run nothing
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
            "style-src 'unsafe-inline'; object-src 'self'; frame-ancestors 'self'",
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get("/enrollments/{device_id}/media/{sha256}", include_in_schema=False)
def media_page(
    device_id: str, sha256: str, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    return media(db, session, device_id, sha256)


@router.get(
    "/api/v1/enrollments/{device_id}/media/{sha256}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "application/pdf": {}}}},
)
def media_api(
    device_id: str, sha256: str, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    """One file of a till's enrollment (a permit scan, a photo, the attestation), by its
    SHA-256, with the content type of its name (inspectors, and the admin who reviews)."""
    return media(db, session, device_id, sha256)


# -- the inspection package ---------------------------------------------------------------
def package(
    request: Request, db: Store, session: Session, device_id: str, nonce: str | None
) -> Response:
    """Build the region's signed package of the till (edge.inspection_package, the format
    `tillbox inspect verify` checks) with the inspector's nonce; audited, then handed out."""
    from edge.inspection_package import build_package

    found = _device(db, session, device_id, "inspector.package")
    if not nonce or not nonce.strip():
        raise BadInput(
            "give a nonce: your own challenge (a date and a random word), signed into the "
            "package so you know it was made for you now"
        )
    key = region_key(request)
    at = now_ms()
    with tempfile.TemporaryDirectory(prefix="tillbox-console-package-") as tmp:
        out = Path(tmp) / "package.zip"
        try:
            built = build_package(db, found["device_id"], key, out, nonce, at)
        except NotFound as exc:
            raise Missing(str(exc)) from None
        data = out.read_bytes()
    audit.record(
        db,
        session.scope,
        "inspector.package",
        found["device_id"],
        tenant=found["tenant"],
        detail=f"nonce={nonce!r} events={built['events']} sha256={built['sha256']}",
        client=client_of(request),
    )
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": (
                f'attachment; filename="inspection-{found["device_id"]}-{at}.zip"'
            ),
            "X-Content-SHA256": built["sha256"],
            "Cache-Control": "no-store",
        },
    )


@router.post("/inspector/devices/{device_id}/package", include_in_schema=False)
def package_form(
    request: Request,
    device_id: str,
    nonce: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    return package(request, db, session, device_id, nonce)


class PackageRequest(BaseModel):
    nonce: str = Field(
        min_length=1,
        max_length=NONCE_MAX,
        description="your challenge, signed into the package (1-200 printable characters)",
    )


@router.post(
    "/api/v1/inspector/devices/{device_id}/package",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the package"}},
)
def package_api(
    request: Request,
    device_id: str,
    body: PackageRequest,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    """The region's inspection package of the till, signed by the region key with your
    nonce, for `tillbox inspect verify` (audited). X-CSRF-Token."""
    return package(request, db, session, device_id, body.nonce)
