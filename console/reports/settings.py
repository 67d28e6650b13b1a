"""A merchant's report settings: whether promoters may see their takings per stall.

Default off: a promoter sees an event's takings only as one aggregate over every
tenant, until the merchant opts in (``share_stall_takings``). The setting is the
tenant's own, so only that tenant's merchant (or an admin) may change it.
"""

from __future__ import annotations

import time

from console.reports import store as db
from console.reports.audit import Audit, detail
from console.reports.period import check_ident
from console.scope import Scope
from edge.store import Store

SETTING_ROLES = ("merchant", "admin")


def stall_sharing(store: Store, scope: Scope, tenant: str) -> bool:
    """Whether ``tenant`` shares its takings per stall with the promoters of its events."""
    scope.require(*SETTING_ROLES)
    scope.check_tenant(check_ident(tenant, "tenant"))
    return db.share_stall_takings(store, scope, tenant)


def set_stall_sharing(
    store: Store,
    scope: Scope,
    tenant: str,
    share: bool,
    *,
    audit: Audit,
    now_ms: int | None = None,
) -> bool:
    scope.require(*SETTING_ROLES)
    scope.check_tenant(check_ident(tenant, "tenant"))
    if not isinstance(share, bool):
        raise TypeError("share must be True or False")
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    db.set_share_stall_takings(store, tenant, share, scope.user, now_ms)
    audit(scope.user, "settings.share_stall_takings", detail(tenant=tenant, share=share))
    return share
