"""The admin's pages and API: users and roles, tenants, devices (enroll, revoke, stall),
the region key's fingerprint, and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from appliance.errors import TillError
from appliance.formats.receipt import key_id
from console import audit, auth, forms, queries, tables
from console.auth import Session
from console.errors import BadInput, Missing
from console.reports import settings
from console.scope import ROLES
from console.web import client_of, page, signed_in, store
from edge import admin as edge_admin
from edge.store import Store

router = APIRouter()
NAV = [
    ("users", "Users", "/admin/users"),
    ("tenants", "Tenants", "/admin/tenants"),
    ("devices", "Devices", "/admin/devices"),
    ("region", "Region key", "/admin/region"),
    ("audit", "Audit log", "/admin/audit"),
]


def _redirect(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def _ids(text: str | None, what: str) -> tuple[str, ...]:
    """A comma-separated list of identifiers (a promoter's events, an inspector's stalls)."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return tuple(forms.ident(t, what, required=True) or "" for t in items)


# -- users --------------------------------------------------------------------------------
def add_user(
    db: Store,
    session: Session,
    name: str,
    role: str,
    password: str,
    tenant: str | None,
    events: tuple[str, ...],
    stalls: tuple[str, ...],
) -> dict[str, Any]:
    scope = session.scope.allow("users")
    forms.ident(name, "user name", required=True)
    forms.choice(role, "role", ROLES, "")
    if not role:
        raise BadInput(f"role is missing; choose one of {', '.join(ROLES)}")
    try:
        auth.add_user(db, name, role, password, forms.ident(tenant, "tenant"), events, stalls)
    except TillError as exc:
        raise BadInput(str(exc)) from None
    audit.record(db, scope, "user.add", name, tenant=tenant or "", detail=f"role {role}")
    return {"name": name, "role": role, "tenant": tenant or None}


@router.get("/admin/users", include_in_schema=False)
def users_page(
    request: Request,
    done: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    return page(
        request,
        session,
        "users.html",
        users=queries.users(db, session.scope),
        roles=ROLES,
        done=forms.ident(done, "done") if done else None,
    )


@router.post("/admin/users", include_in_schema=False)
async def users_add_form(
    name: str = Form(""),
    role: str = Form(""),
    tenant: str = Form(""),
    events: str = Form(""),
    stalls: str = Form(""),
    password: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    out = await run_in_threadpool(
        add_user,
        db,
        session,
        name,
        role,
        password,
        tenant or None,
        _ids(events, "event"),
        _ids(stalls, "stall"),
    )
    return _redirect(f"/admin/users?done={out['name']}")


def set_disabled(db: Store, session: Session, name: str, disabled: bool) -> dict[str, Any]:
    scope = session.scope.allow("users")
    forms.ident(name, "user name", required=True)
    if name == scope.user and disabled:
        raise BadInput("you cannot disable yourself; ask another admin")
    if not tables.set_user_disabled(db, name, disabled):
        raise Missing(f"no user {name}")
    audit.record(db, scope, "user.disable" if disabled else "user.enable", name)
    return {"name": name, "disabled": disabled}


@router.post("/admin/users/{name}/disable", include_in_schema=False)
def users_disable_form(
    name: str, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    set_disabled(db, session, name, True)
    return _redirect("/admin/users")


@router.post("/admin/users/{name}/enable", include_in_schema=False)
def users_enable_form(
    name: str, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    set_disabled(db, session, name, False)
    return _redirect("/admin/users")


class NewUser(BaseModel):
    name: str = Field(max_length=64)
    role: str = Field(max_length=16, description=" | ".join(ROLES))
    password: str = Field(max_length=auth.PASSWORD_MAX)
    tenant: str | None = Field(None, max_length=64)
    events: list[str] = Field(default_factory=list, max_length=100)
    stalls: list[str] = Field(default_factory=list, max_length=100)


@router.get("/api/v1/users")
def users_api(session: Session = Depends(signed_in), db: Store = Depends(store)) -> dict:
    """Every console user with role and scope (never a password hash)."""
    return {"users": queries.users(db, session.scope)}


@router.post("/api/v1/users")
def users_add_api(
    body: NewUser, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> dict[str, Any]:
    """Add a console user (admin; X-CSRF-Token)."""
    return add_user(
        db,
        session,
        body.name,
        body.role,
        body.password,
        body.tenant,
        tuple(forms.ident(e, "event", True) or "" for e in body.events),
        tuple(forms.ident(s, "stall", True) or "" for s in body.stalls),
    )


# -- tenants ------------------------------------------------------------------------------
def tenants_data(db: Store, session: Session) -> dict[str, Any]:
    scope = session.scope.allow("tenants")
    rows = queries.tenants(db, scope)
    for row in rows:
        row["share_stall_takings"] = settings.stall_sharing(db, scope, row["tenant"])
    return {"tenants": rows}


def set_sharing(
    db: Store, session: Session, tenant: str | None, share: bool, client: str
) -> dict[str, Any]:
    """Whether promoters of the tenant's events see its takings per stall (the reports'
    setting, ``console.reports.settings``; default: the aggregate only)."""
    scope = session.scope
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    if chosen is None:
        raise BadInput("tenant is missing; say whose setting it is")
    settings.set_stall_sharing(db, scope, chosen, share, audit=audit.hook(db, scope, client))
    return {"tenant": chosen, "share_stall_takings": share}


@router.get("/admin/tenants", include_in_schema=False)
def tenants_page(
    request: Request, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    return page(request, session, "tenants.html", **tenants_data(db, session))


@router.post("/settings/stall-sharing", include_in_schema=False)
def sharing_form(
    request: Request,
    tenant: str = Form(""),
    share_stall_takings: str = Form(""),
    back: str = Form("/"),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    set_sharing(db, session, tenant or None, share_stall_takings == "on", client_of(request))
    return _redirect(back if back in ("/sales", "/admin/tenants") else "/")


class Sharing(BaseModel):
    tenant: str | None = Field(None, max_length=64)
    share_stall_takings: bool


@router.get("/api/v1/tenants")
def tenants_api(session: Session = Depends(signed_in), db: Store = Depends(store)) -> dict:
    """Every tenant with how many tills and users it has, and its stall-sharing setting."""
    return tenants_data(db, session)


@router.post("/api/v1/settings/stall-sharing")
def sharing_api(
    body: Sharing,
    request: Request,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Let promoters of the tenant's events see its takings per stall, or not (merchant
    of the tenant, or admin; X-CSRF-Token)."""
    return set_sharing(db, session, body.tenant, body.share_stall_takings, client_of(request))


# -- devices ------------------------------------------------------------------------------
def devices_data(db: Store, session: Session) -> dict[str, Any]:
    scope = session.scope.allow("devices")
    rejected = queries.rejections(db, scope)
    devices = queries.devices(db, scope)
    for d in devices:
        d["rejected"] = rejected.get(d["device_id"], {})
    return {"devices": devices}


def enroll(
    db: Store, session: Session, device_id: str, tenant: str, public_key: str
) -> dict[str, Any]:
    from nacl.signing import VerifyKey

    scope = session.scope.allow("devices")
    device_id = forms.ident(device_id, "device id", required=True) or ""
    tenant = forms.ident(tenant, "tenant", required=True) or ""
    text = (public_key or "").strip()
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise BadInput("the public key is 64 hex digits (the till's keys/device.pub)")
    try:
        info = edge_admin.enroll(db, device_id, VerifyKey(bytes.fromhex(text)), tenant)
    except TillError as exc:
        raise BadInput(str(exc)) from None
    audit.record(db, scope, "device.enroll", device_id, tenant=tenant)
    return info


def revoke(
    db: Store, session: Session, device_id: str, reason: str, client: str = ""
) -> dict[str, Any]:
    """The edge's revocation rule (``edge.admin.revoke``, what ``tillbox edge revoke``
    runs: under the device's row lock, for good; its segments and health messages are
    refused and counted from the commit on)."""
    scope = session.scope.allow("devices")
    device_id = forms.ident(device_id, "device id", required=True) or ""
    reason = forms.note(reason, "reason")
    found = queries.device(db, scope, device_id)
    if found is None:
        raise Missing(f"no device {device_id} is enrolled")
    info = edge_admin.revoke(db, device_id, reason)
    audit.record(
        db, scope, "device.revoke", device_id, tenant=found["tenant"], detail=reason, client=client
    )
    return info


def set_profile(
    db: Store, session: Session, device_id: str, stall: str, label: str, client: str = ""
) -> dict[str, Any]:
    """A device's stall (the sales page groups by it) and label (``edge.admin.set_profile``)."""
    scope = session.scope.allow("devices")
    device_id = forms.ident(device_id, "device id", required=True) or ""
    stall = forms.ident(stall, "stall") or ""
    found = queries.device(db, scope, device_id)
    if found is None:
        raise Missing(f"no device {device_id} is enrolled")
    try:
        info = edge_admin.set_profile(db, device_id, stall, label or "")
    except TillError as exc:
        raise BadInput(str(exc)) from None
    audit.record(
        db, scope, "device.profile", device_id, tenant=found["tenant"], detail=stall, client=client
    )
    return info


@router.get("/admin/devices", include_in_schema=False)
def devices_page(
    request: Request, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> Response:
    return page(request, session, "devices.html", **devices_data(db, session))


@router.post("/admin/devices", include_in_schema=False)
def devices_enroll_form(
    device_id: str = Form(""),
    tenant: str = Form(""),
    public_key: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    enroll(db, session, device_id, tenant, public_key)
    return _redirect("/admin/devices")


@router.post("/admin/devices/{device_id}/revoke", include_in_schema=False)
def devices_revoke_form(
    request: Request,
    device_id: str,
    reason: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    revoke(db, session, device_id, reason, client_of(request))
    return _redirect("/admin/devices")


@router.post("/admin/devices/{device_id}/profile", include_in_schema=False)
def devices_profile_form(
    request: Request,
    device_id: str,
    stall: str = Form(""),
    label: str = Form(""),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    set_profile(db, session, device_id, stall, label, client_of(request))
    return _redirect("/admin/devices")


class Enrollment(BaseModel):
    device_id: str = Field(max_length=64)
    tenant: str = Field(max_length=64)
    public_key: str = Field(max_length=64, description="64 hex digits")


class Revocation(BaseModel):
    reason: str = Field(max_length=500)


@router.get("/api/v1/devices")
def devices_api(session: Session = Depends(signed_in), db: Store = Depends(store)) -> dict:
    """Every enrolled device: tenant, key, stall, revocation, refused segments by reason."""
    return devices_data(db, session)


@router.post("/api/v1/devices")
def devices_enroll_api(
    body: Enrollment, session: Session = Depends(signed_in), db: Store = Depends(store)
) -> dict[str, Any]:
    """Enroll a till's public key for a tenant (the same rule as `tillbox edge enroll`)."""
    return enroll(db, session, body.device_id, body.tenant, body.public_key)


@router.post("/api/v1/devices/{device_id}/revoke")
def devices_revoke_api(
    request: Request,
    device_id: str,
    body: Revocation,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Revoke a device's key: the edge refuses (and counts) its segments from now on."""
    return revoke(db, session, device_id, body.reason, client_of(request))


# -- the region key -----------------------------------------------------------------------
def region_data(request: Request, session: Session) -> dict[str, Any]:
    session.scope.allow("region")
    path = request.app.state.region_key_path
    if path is None:
        return {
            "configured": False,
            "message": "no region key given; start the console with --key FILE",
        }
    from appliance.keys import load_signing_key

    try:
        verify = load_signing_key(Path(path)).verify_key
    except TillError as exc:
        return {"configured": False, "message": str(exc)}
    hexkey = verify.encode().hex()
    return {
        "configured": True,
        "public_key": hexkey,
        "key_id": key_id(verify),
        "message": "",
    }


@router.get("/admin/region", include_in_schema=False)
def region_page(request: Request, session: Session = Depends(signed_in)) -> Response:
    return page(request, session, "region.html", **region_data(request, session))


@router.get("/api/v1/region")
def region_api(request: Request, session: Session = Depends(signed_in)) -> dict[str, Any]:
    """The region key's public half (what every till pins in [sync] region_public_key) and
    its key id (SHA-256 of the key, first 8 bytes, base64url: the TB2 key-id rule)."""
    return region_data(request, session)


# -- audit --------------------------------------------------------------------------------
@router.get("/admin/audit", include_in_schema=False)
def audit_page(
    request: Request,
    before: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    before_id = forms.whole(before, "before", 1) if before else None
    rows = queries.audit(db, session.scope, 200, before_id)
    return page(request, session, "audit.html", rows=rows)


@router.get("/api/v1/audit")
def audit_api(
    before: str | None = Query(None, description="only rows with a smaller id (paging)"),
    limit: str | None = Query(None, description="at most this many rows (1-1000)"),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Who viewed or exported what, newest first."""
    before_id = forms.whole(before, "before", 1) if before else None
    n = forms.whole(limit, "limit", 1, 1000) if limit else 200
    return {"rows": queries.audit(db, session.scope, n, before_id)}
