"""The audit log: who viewed or exported what, and who changed what.

Every view of a receipt, every export (tax reports and filings through :func:`hook`, the
callable ``console.reports`` takes; inspector packages), every count, enrollment,
revocation and user change is one row of ``console_audit``. The admin's audit page
reads it (``console.queries.audit``). Rows are written in the request that did the
thing, so an export that was answered was also audited.
"""

from __future__ import annotations

from collections.abc import Callable

from console import tables
from console.auth import now_ms
from console.scope import Scope
from edge.store import Store

DETAIL_MAX = 500


def record(
    store: Store,
    scope: Scope,
    action: str,
    target: str = "",
    *,
    tenant: str | None = None,
    detail: str = "",
    client: str = "",
) -> None:
    """One audit row: ``action`` is dotted (``receipt.view``, ``tax.export``, ...)."""
    tables.insert_audit(
        store,
        now_ms(),
        scope.user,
        scope.role,
        action,
        tenant or scope.tenant or "",
        target[:200],
        detail[:DETAIL_MAX],
        client[:64],
    )


def hook(store: Store, scope: Scope, client: str = "") -> Callable[[str, str, str], None]:
    """The ``audit(user, action, detail)`` callable that :mod:`console.reports` takes
    (exports, filings, settings), writing to the same log."""

    def write(user: str, action: str, detail: str) -> None:
        tables.insert_audit(
            store,
            now_ms(),
            user,
            scope.role,
            action,
            scope.tenant or "",
            "",
            detail[:DETAIL_MAX],
            client[:64],
        )

    return write
