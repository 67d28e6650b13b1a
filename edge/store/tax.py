"""The tax ledger: sales, gross, tax and net per tenant, tax profile and rate."""

from __future__ import annotations

from edge.store.base import StoreBase


class TaxTables(StoreBase):
    def add_tax(
        self, tenant: str, profile: str, rate: str, sales: int, gross: int, tax: int, net: int
    ) -> None:
        self.execute(
            "INSERT INTO tax_ledger (tenant, tax_profile, rate, sales, gross_minor, "
            "tax_minor, net_minor) VALUES (?,?,?,?,?,?,?) ON CONFLICT "
            "(tenant, tax_profile, rate) DO UPDATE SET sales = tax_ledger.sales + "
            "excluded.sales, gross_minor = tax_ledger.gross_minor + excluded.gross_minor, "
            "tax_minor = tax_ledger.tax_minor + excluded.tax_minor, "
            "net_minor = tax_ledger.net_minor + excluded.net_minor",
            (tenant, profile, rate, sales, gross, tax, net),
        )

    def tax_ledger(self) -> list[tuple]:
        """(tenant, tax_profile, rate, sales, gross_minor, tax_minor, net_minor)."""
        return self.all(
            "SELECT tenant, tax_profile, rate, sales, gross_minor, tax_minor, net_minor "
            "FROM tax_ledger"
        )
