"""The tax ledger a tax reporter reads: per tax profile (jurisdiction) and rate, for a period.

The figures are sums of the ``rollup_tax`` rows ingest keeps per tenant, tax profile,
rate, day and event. A refund is in them as a negative row under the profile of the
sale it refunds, on the day it was refunded (edge/ledger.py decides the profile), so
the ledger of every day a tenant traded equals the edge's ``tax_ledger`` to the cent.

Rows are per profile and ``rate_bp`` (the rate in basis points: 2000 is 20 %); two
rate names with the same percentage in one profile are one row, which is how a
return is filed. Amounts are integer minor units in the profile's currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.reports import store as db
from console.reports.period import Period, check_ident
from console.scope import Scope
from edge.store import Store

# Who reads and files the tax ledger. One place, so widening it is one line.
TAX_ROLES = ("tax",)


@dataclass(frozen=True)
class TaxRow:
    tax_profile: str
    rate_bp: int
    net_minor: int
    tax_minor: int
    gross_minor: int

    def to_json(self) -> dict[str, Any]:
        return {
            "tax_profile": self.tax_profile,
            "rate_bp": self.rate_bp,
            "net_minor": self.net_minor,
            "tax_minor": self.tax_minor,
            "gross_minor": self.gross_minor,
        }


@dataclass(frozen=True)
class TaxLedger:
    tenant: str
    period: Period
    rows: tuple[TaxRow, ...]

    @property
    def total_gross_minor(self) -> int:
        return sum(r.gross_minor for r in self.rows)

    @property
    def total_tax_minor(self) -> int:
        return sum(r.tax_minor for r in self.rows)

    @property
    def total_net_minor(self) -> int:
        return sum(r.net_minor for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        """Exactly the body of ``GET /api/v1/tax``."""
        return {
            "rows": [r.to_json() for r in self.rows],
            "total_gross_minor": self.total_gross_minor,
        }


def rate_label(rate_bp: int) -> str:
    """2000 -> ``20.00 %``; 550 -> ``5.50 %``."""
    whole, frac = divmod(rate_bp, 100)
    return f"{whole}.{frac:02d} %"


def tax_ledger(
    store: Store, scope: Scope, tenant: str, period: Period, tax_profile: str | None = None
) -> TaxLedger:
    """The tenant's ledger for ``period`` (all profiles, or one)."""
    scope.require(*TAX_ROLES)
    scope.check_tenant(check_ident(tenant, "tenant"))
    if tax_profile is not None:
        check_ident(tax_profile, "tax profile")
    rows = db.tax_rows(store, scope, tenant, period.start, period.end, period.event_id, tax_profile)
    return TaxLedger(tenant, period, tuple(TaxRow(*r) for r in rows))
