"""Onboarding review for the admin: upload a till's enrollment export file, see what is
pending, approve or reject it with a reason.

* The upload is the export the till writes (``tillbox enrollment export``, formats.md
  C3.1), bounded (:data:`UPLOAD_LIMIT`) before it is read, checked by the edge's own
  import (``edge.enrollments.import_enrollment``: the device's signature first, then
  the manifest, then every file's hash) against the key the region enrolled.
* A decision is the edge's review (``edge.review.review_enrollment``): signed by the
  region key (``--key``), bound to the device, its tenant and the manifest's hash, and
  kept. When the console was started with broker settings (``--broker``,
  ``--publisher``, ``--publisher-password-file``) it is published retained to the till's
  down topic at once (``publish_review``); otherwise, or when the broker cannot be
  reached, the page says so and "send again" (or ``tillbox edge enrollment publish``)
  sends it later. The till shows it in its self-test after its next sync.

Why the admin and not a role of its own: an approval registers the till with the region
and pins the region key on it, an act of whoever runs the region. The areas are
``enrollments`` and ``enrollments.review`` in ``console.scope.ACCESS``: a reviewer role
is one line there (and in ``ROLES``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from appliance.boundedio import MiB, read_stream
from appliance.boundedio import TooLarge as FileTooLarge
from appliance.errors import NotFound, RuleViolation, TillError
from appliance.formats.brokerurl import BrokerURL
from appliance.formats.review import REASON_MAX
from console import audit, enrollment_view, forms
from console.auth import Session, now_ms
from console.errors import BadInput, Missing, TooLarge
from console.routes.inspector import region_key
from console.web import client_of, page, signed_in, store
from edge.enrollments import (
    EnrollmentRecord,
    ReviewRecord,
    import_enrollment,
    list_enrollments,
    require_enrollment,
)
from edge.review import latest_review, publish_review, review_enrollment
from edge.store import Store

log = logging.getLogger("tillbox.console")

router = APIRouter()
NAV = [("enrollments", "Enrollments", "/admin/enrollments")]

# What the console reads of one upload. An export is a manifest, a few scans and photos
# (each at most 32 MiB on the till); a bigger one is imported with
# `tillbox edge enrollment import`, which reads up to the format's 256 MiB.
UPLOAD_LIMIT = 64 * MiB
UPLOAD_PATHS = ("/admin/enrollments", "/api/v1/enrollments")
STATUSES = ("pending", "approved", "rejected", "all")


@dataclass(frozen=True)
class Publisher:
    """Where the console publishes a signed review: the region broker and the publisher
    identity (its password from a 0600 file, never logged)."""

    broker: BrokerURL
    username: str
    password: str

    def send(self, record: ReviewRecord) -> dict[str, Any]:
        return publish_review(self.broker, self.username, self.password, record)

    def send_bytes(self, topic: str, data: bytes) -> None:
        """Publish signed bytes retained (QoS 1, waiting for the broker's PUBACK)."""
        from edge.publish import send_bytes

        send_bytes(self.broker, self.username, self.password, topic, data, retain=True)


# -- listing and reading ------------------------------------------------------------------
def list_data(db: Store, session: Session, status: str | None) -> dict[str, Any]:
    session.scope.allow("enrollments")
    chosen = forms.choice(status, "status", STATUSES, "pending")
    records = list_enrollments(db)
    counts = {s: sum(1 for r in records if r.status == s) for s in STATUSES[:-1]}
    shown = [r for r in records if chosen == "all" or r.status == chosen]
    return {
        "status": chosen,
        "counts": counts,
        "enrollments": [_summary(r) for r in shown],
    }


def _summary(r: EnrollmentRecord) -> dict[str, Any]:
    m = r.manifest
    return {
        "device_id": r.device_id,
        "tenant": r.tenant,
        "sequence": r.sequence,
        "status": r.status,
        "imported_ms": r.imported_ms,
        "manifest_sha256": r.manifest_sha256,
        "business": m["business"]["name"],
        "operator": m["operator"]["name"],
        "permits": len(m["permits"]),
        "photos": len(m["photos"]),
        "review": None if r.review is None else r.review.to_json(),
    }


def detail_data(db: Store, session: Session, device_id: str) -> dict[str, Any]:
    session.scope.allow("enrollments")
    device_id = forms.ident(device_id, "till", required=True) or ""
    try:
        latest = require_enrollment(db, device_id)
    except NotFound as exc:
        raise Missing(str(exc)) from None
    return {
        "device_id": device_id,
        "latest": enrollment_view.describe(db, latest),
        "earlier": [
            enrollment_view.describe(db, r)
            for r in enrollment_view.enrollments_of(db, device_id)
            if r.manifest_sha256 != latest.manifest_sha256
        ],
    }


# -- importing ----------------------------------------------------------------------------
def import_data(db: Store, session: Session, data: bytes, client: str) -> dict[str, Any]:
    scope = session.scope.allow("enrollments")
    if not data:
        raise BadInput(
            "choose the till's enrollment export file (`tillbox enrollment export --out FILE`)"
        )
    record = import_enrollment(db, data, now_ms())  # TillError: 422 with the one line
    audit.record(
        db,
        scope,
        "enrollment.import",
        record.device_id,
        tenant=record.tenant,
        detail=f"enrollment {record.sequence} manifest {record.manifest_sha256}"
        + (" (already imported)" if record.already_imported else ""),
        client=client,
    )
    return _summary(record) | {"already_imported": record.already_imported}


def _too_large() -> TooLarge:
    return TooLarge(
        f"the export is larger than {UPLOAD_LIMIT >> 20} MiB; import it with "
        "`tillbox edge enrollment import --db URL FILE` on the region server"
    )


@router.get("/admin/enrollments", include_in_schema=False)
def list_page(
    request: Request,
    status: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = list_data(db, session, status)
    data["showing"] = data.pop("status")  # page() takes ``status`` as the HTTP status
    return page(
        request,
        session,
        "enrollments.html",
        **data,
        statuses=STATUSES,
        limit_mib=UPLOAD_LIMIT >> 20,
    )


@router.post("/admin/enrollments", include_in_schema=False)
def upload_form(
    request: Request,
    export: UploadFile | None = File(None),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    session.scope.allow("enrollments")
    if export is None or not export.filename:
        data = b""
    else:
        try:
            data = read_stream(export.file, UPLOAD_LIMIT, "the enrollment export")
        except FileTooLarge:
            raise _too_large() from None
    out = import_data(db, session, data, client_of(request))
    done = "already" if out["already_imported"] else "imported"
    return RedirectResponse(f"/admin/enrollments/{out['device_id']}?done={done}", status_code=303)


@router.get("/admin/enrollments/{device_id}", include_in_schema=False)
def detail_page(
    request: Request,
    device_id: str,
    done: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    data = detail_data(db, session, device_id)
    shown = forms.choice(
        done, "done", ("imported", "already", "approved", "rejected", "sent", "unsent"), ""
    )
    return page(
        request,
        session,
        "enrollment.html",
        **data,
        done=shown,
        publishing=request.app.state.publisher is not None,
        reason_max=REASON_MAX,
    )


@router.get("/api/v1/enrollments")
def list_api(
    status: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """The imported enrollments (pending by default; ``status`` pending, approved,
    rejected or all), with how many of each."""
    return list_data(db, session, status)


@router.post(
    "/api/v1/enrollments",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_api(
    request: Request, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> dict[str, Any]:
    """Import a till's enrollment export (the file ``tillbox enrollment export`` writes, as
    the raw body, ``application/octet-stream`` or ``application/zip``, at most 64 MiB):
    signature, manifest and every file's hash checked against the device key the region
    holds. X-CSRF-Token."""
    from fastapi.concurrency import run_in_threadpool

    session.scope.allow("enrollments")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > UPLOAD_LIMIT:
            raise _too_large()
        parts.append(chunk)
    return await run_in_threadpool(import_data, db, session, b"".join(parts), client_of(request))


@router.get("/api/v1/enrollments/{device_id}")
def detail_api(
    device_id: str, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> dict[str, Any]:
    """A till's latest enrollment (manifest, files, reviews) and its earlier ones."""
    return detail_data(db, session, device_id)


# -- reviewing ----------------------------------------------------------------------------
def _publish(request: Request, record: ReviewRecord) -> dict[str, Any]:
    publisher: Publisher | None = request.app.state.publisher
    if publisher is None:
        return {
            "sent": False,
            "message": "not sent: the console has no broker settings (--broker); send it "
            f"with `tillbox edge enrollment publish --device {record.device_id} --broker URL`",
        }
    try:
        info = publisher.send(record)
    except (TillError, OSError) as exc:
        log.warning("review of %s not published: %s", record.device_id, exc)
        return {
            "sent": False,
            "message": f"kept, not sent yet: {exc}; send it again when the broker is up",
        }
    return {"sent": True, "message": f"published retained on {info['topic']}", **info}


def review_data(
    request: Request,
    db: Store,
    session: Session,
    device_id: str,
    decision: str | None,
    reason: str | None,
) -> dict[str, Any]:
    scope = session.scope.allow("enrollments.review")
    device_id = forms.ident(device_id, "till", required=True) or ""
    chosen = forms.choice(decision, "decision", ("approve", "reject"), "")
    if not chosen:
        raise BadInput("choose approve or reject")
    text = forms.note(reason, "reason", REASON_MAX)
    key = region_key(request)
    try:
        record = review_enrollment(db, device_id, chosen, text, scope.user, key, now_ms())
    except NotFound as exc:
        raise Missing(str(exc)) from None
    except RuleViolation as exc:
        raise BadInput(str(exc)) from None
    audit.record(
        db,
        scope,
        f"enrollment.{chosen}",
        device_id,
        tenant=record.tenant,
        detail=f"manifest {record.manifest_sha256}: {text}",
        client=client_of(request),
    )
    return {"review": record.to_json(), "published": _publish(request, record)}


def publish_data(request: Request, db: Store, session: Session, device_id: str) -> dict:
    scope = session.scope.allow("enrollments.review")
    device_id = forms.ident(device_id, "till", required=True) or ""
    try:
        record = latest_review(db, device_id)
    except NotFound as exc:
        raise Missing(str(exc)) from None
    except RuleViolation as exc:
        raise BadInput(str(exc)) from None
    published = _publish(request, record)
    audit.record(
        db,
        scope,
        "enrollment.publish",
        device_id,
        tenant=record.tenant,
        detail=published["message"][:200],
        client=client_of(request),
    )
    return {"review": record.to_json(), "published": published}


@router.post("/admin/enrollments/{device_id}/review", include_in_schema=False)
def review_form(
    request: Request,
    device_id: str,
    decision: str = Form(""),
    reason: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    out = review_data(request, db, session, device_id, decision, reason)
    verdict = {"approve": "approved", "reject": "rejected"}[out["review"]["decision"]]
    done = "sent" if out["published"]["sent"] else verdict
    return RedirectResponse(f"/admin/enrollments/{device_id}?done={done}", status_code=303)


@router.post("/admin/enrollments/{device_id}/publish", include_in_schema=False)
def publish_form(
    request: Request,
    device_id: str,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    out = publish_data(request, db, session, device_id)
    done = "sent" if out["published"]["sent"] else "unsent"
    return RedirectResponse(f"/admin/enrollments/{device_id}?done={done}", status_code=303)


class Decision(BaseModel):
    decision: str = Field(max_length=8, description="approve or reject")
    reason: str = Field(max_length=REASON_MAX, description="why, one line (shown on the till)")


@router.post("/api/v1/enrollments/{device_id}/review")
def review_api(
    request: Request,
    device_id: str,
    body: Decision = Body(...),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Approve or reject the till's latest enrollment: signed by the region key, kept, and
    published retained to the till when the console has broker settings. X-CSRF-Token."""
    return review_data(request, db, session, device_id, body.decision, body.reason)


@router.post("/api/v1/enrollments/{device_id}/publish")
def publish_api(
    request: Request,
    device_id: str,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Send the till's latest signed review again (retained). X-CSRF-Token."""
    return publish_data(request, db, session, device_id)
