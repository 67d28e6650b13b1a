"""Who is asking, and what they may see: the one home of the console's access rules.

Every query function in the console takes a :class:`Scope` and adds its conditions to
the SQL it runs (:meth:`Scope.tenant_filter`), so a page or API route that forgets a
check still cannot read another tenant's rows. A route asks :meth:`Scope.require` for
its role first; a request outside the scope raises :class:`OutOfScope`, which the web
layer answers with 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("admin", "merchant", "promoter", "tax", "inspector", "technician")
# Roles that see every tenant of the region (a technician looks after the whole fleet;
# a tax reporter of the region files for every merchant; an admin runs the region).
REGION_WIDE = frozenset({"admin", "technician", "tax"})
# Roles whose users belong to one tenant (``tillbox edge user add --tenant``).
TENANT_ROLES = frozenset({"merchant"})

# What each role may open or do, by area. The query layer asks for the area before it
# reads (console.queries), the routes before they render, and the navigation shows only
# what is allowed, all from this one table. A page added by another module adds its
# area here.
ACCESS: dict[str, frozenset[str]] = {
    "sales": frozenset({"merchant", "admin"}),
    "refunds": frozenset({"merchant", "admin"}),
    "stock": frozenset({"merchant", "admin"}),
    "stock.count": frozenset({"merchant", "admin"}),
    "exposure": frozenset({"merchant", "admin", "technician"}),
    "receipts": frozenset({"merchant", "admin"}),
    # bookings from the merchant's microsite (console/routes/bookings.py, API only)
    "bookings": frozenset({"merchant", "admin"}),
    "verify": frozenset({"merchant", "admin", "tax", "inspector"}),
    "fleet": frozenset({"technician", "admin"}),
    "users": frozenset({"admin"}),
    "tenants": frozenset({"admin"}),
    "devices": frozenset({"admin"}),
    "region": frozenset({"admin", "technician"}),
    "audit": frozenset({"admin"}),
    # the tax reporter's ledger, exports and filings (console/routes/tax.py over
    # console/reports; the library checks its own TAX_ROLES as well)
    "tax": frozenset({"tax"}),
    "tax.file": frozenset({"tax"}),
    # a promoter's events (console/routes/promoter.py)
    "promoter": frozenset({"promoter"}),
    # an inspector's stalls and events, read-only (console/routes/inspector.py); the
    # package is built for them, audited
    "inspector": frozenset({"inspector"}),
    "inspector.package": frozenset({"inspector"}),
    # the enrollment files (permit scans, photos): the inspector's, and the reviewer's
    "enrollment.media": frozenset({"inspector", "admin"}),
    # onboarding review (console/routes/enrollments.py): importing a till's export and
    # approving or rejecting it. An admin's: the approval registers the till with the
    # region and pins the region key on it (widen here to add a reviewer role)
    "enrollments": frozenset({"admin"}),
    "enrollments.review": frozenset({"admin"}),
}


class OutOfScope(Exception):
    """The caller may not see this (answered with 403, never with another tenant's data)."""


@dataclass(frozen=True)
class Scope:
    """A signed-in user's reach: their role, their tenant (if any), and for promoters and
    inspectors the events or stalls they were given."""

    user: str
    role: str
    tenant: str | None = None
    events: frozenset[str] = field(default_factory=frozenset)
    stalls: frozenset[str] = field(default_factory=frozenset)

    def require(self, *roles: str) -> Scope:
        if self.role not in roles:
            raise OutOfScope(f"the {self.role} role cannot open this page")
        return self

    def may(self, area: str) -> bool:
        return self.role in ACCESS.get(area, frozenset())

    def allow(self, area: str) -> Scope:
        """This scope, if its role may use ``area`` (see ACCESS); else OutOfScope."""
        if not self.may(area):
            raise OutOfScope(f"the {self.role} role cannot open {area}")
        return self

    def pick_tenant(self, requested: str | None) -> str | None:
        """The tenant a page shows: a tenant user's own (asking for another is OutOfScope),
        or for a region-wide role the one asked for, None meaning every tenant."""
        if self.role in REGION_WIDE:
            return requested or None
        if self.tenant is None:
            raise OutOfScope("your user has no tenant; ask an admin to set one")
        if requested and requested != self.tenant:
            raise OutOfScope(f"tenant {requested!r} is outside your scope")
        return self.tenant

    def may_see_tenant(self, tenant: str) -> bool:
        return self.role in REGION_WIDE or (self.tenant is not None and self.tenant == tenant)

    def check_tenant(self, tenant: str) -> str:
        if not self.may_see_tenant(tenant):
            raise OutOfScope(f"tenant {tenant!r} is outside your scope")
        return tenant

    def may_see_event(self, event_id: str) -> bool:
        return self.role in REGION_WIDE or event_id in self.events

    def check_event(self, event_id: str) -> str:
        if not self.may_see_event(event_id):
            raise OutOfScope(f"event {event_id!r} is outside your scope")
        return event_id

    def event_filter(self, column: str = "event_id") -> tuple[str, tuple[str, ...]]:
        """An SQL condition and its parameters that keep only this caller's events (a
        promoter's or inspector's; the region-wide roles see every event)."""
        if self.role in REGION_WIDE:
            return "1 = 1", ()
        if not self.events:
            return "1 = 0", ()
        marks = ",".join("?" * len(self.events))
        return f"{column} IN ({marks})", tuple(sorted(self.events))

    def tenant_filter(self, column: str = "tenant") -> tuple[str, tuple[str, ...]]:
        """An SQL condition and its parameters that keep only this caller's tenants."""
        if self.role in REGION_WIDE:
            return "1 = 1", ()
        if self.tenant is None:
            return "1 = 0", ()
        return f"{column} = ?", (self.tenant,)
