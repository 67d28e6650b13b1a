"""The technician's fleet page and ``/api/v1/fleet``: every till's health at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from console import fleet, forms, queries
from console.auth import Session, now_ms
from console.web import page, signed_in, store
from edge.store import Store

router = APIRouter()
NAV = [("fleet", "Fleet", "/fleet")]


def fleet_data(
    request: Request,
    db: Store,
    session: Session,
    tenant: str | None,
    not_version: str | None = None,
) -> dict[str, Any]:
    scope = session.scope.allow("fleet")
    chosen = scope.pick_tenant(forms.ident(tenant, "tenant"))
    behind = forms.version(not_version, "not_version")
    silent_after = request.app.state.silent_after_ms
    now = now_ms()
    devices = [fleet.health(row, now, silent_after) for row in queries.fleet(db, scope, chosen)]
    if behind is not None:  # the tills an update has still to reach (or that never said)
        devices = [d for d in devices if d["update"]["running"] != behind]
    return {
        "now_ms": now,
        "silent_after_ms": silent_after,
        "flagged": sum(1 for d in devices if d["flags"]),
        "not_version": behind,
        "devices": devices,
    }


@router.get("/fleet", include_in_schema=False)
def fleet_page(
    request: Request,
    tenant: str | None = None,
    not_version: str | None = None,
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> Response:
    return page(
        request, session, "fleet.html", **fleet_data(request, db, session, tenant, not_version)
    )


class SelfTestCheck(BaseModel):
    name: str
    result: str = Field(description="pass, warn or fail")


class SelfTest(BaseModel):
    verdict: str
    at_ms: int | None
    checks: list[SelfTestCheck]


class UpdateState(BaseModel):
    state: str | None = Field(
        description="none, installing, interrupted, awaiting_reboot, trial, committed, "
        "rolled_back or failed (docs/formats.md, TBHL update); null: the till did not say"
    )
    running: str | None = Field(description="the version the till runs")
    slot: str | None = Field(description="A or B, the root slot it runs from; null: unknown")
    version: str | None = Field(description="the last update's version")
    reason: str | None = Field(description="why it rolled back or failed")
    at_ms: int | None
    text: str = Field(description="the fleet page's line, e.g. '2.1.0 on trial in slot B'")


class FleetDevice(BaseModel):
    model_config = ConfigDict(extra="allow")
    device_id: str
    tenant: str
    last_seen_ms: int | None = Field(description="when the region last heard the till (ms)")
    version: str | None
    queued_events: int | None = Field(description="events the till has not synced yet")
    drain_estimate_s: float | None
    selftest: SelfTest | None
    silent: bool = Field(description="not heard for longer than the console's silent limit")
    update: UpdateState
    flags: list[str]


class FleetOut(BaseModel):
    now_ms: int
    silent_after_ms: int
    flagged: int
    not_version: str | None = Field(description="the filter: only tills not running it")
    devices: list[FleetDevice]


@router.get("/api/v1/fleet", response_model=FleetOut)
def fleet_api(
    request: Request,
    tenant: str | None = Query(None, description="only this tenant's tills"),
    not_version: str | None = Query(
        None, description="only tills not running this version (an update to roll out)"
    ),
    session: Session = Depends(signed_in),
    db: Store = Depends(store),
) -> dict[str, Any]:
    """Every till: last seen, version, update state, queued events and drain estimate, the
    last self-test check by check, paper, engraver alarm, power, clock skew, and what is
    flagged."""
    return fleet_data(request, db, session, tenant, not_version)
