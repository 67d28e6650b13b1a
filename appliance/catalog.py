"""Catalog, tax profiles and promotions: the data a sale is priced from.

The catalog reaches the till as a ``catalog.applied`` event (from ``init
--demo``, a technician, or a signed region update), so every price a receipt
used can be traced in the log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.errors import RuleViolation


@dataclass(frozen=True)
class Item:
    sku: str
    name: str
    price_minor: int
    tax_rate: str  # a rate code of the active tax profile, e.g. "standard"
    category: str = "general"
    engravable: bool = False  # personalised goods: engraved to order, never refundable
    track_stock: bool = True
    initial_stock: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TaxProfile:
    """The tax rules of one location or event (pop-ups move between jurisdictions).

    ``rates`` map a rate code to basis points (2000 = 20 %). ``rounding`` is
    ``"line"`` (tax rounded per line) or ``"receipt"`` (per rate over the
    receipt). ``cash_rounding_minor`` > 1 rounds cash totals to that step.
    """

    id: str
    name: str
    currency: str
    prices_include_tax: bool
    rates: dict[str, int]
    rounding: str = "line"
    cash_rounding_minor: int = 0
    category_rates: dict[str, str] = field(default_factory=dict)

    def rate_for(self, item: Item) -> tuple[str, int]:
        """Rate code and basis points for ``item``: category override first, then item."""
        code = self.category_rates.get(item.category, item.tax_rate)
        if code not in self.rates:
            raise RuleViolation(
                f"tax rate {code!r} of {item.sku} is not in tax profile "
                f"{self.id}; apply a catalog whose profile defines it"
            )
        return code, self.rates[code]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Promotion:
    """``percent`` (value in basis points), ``amount`` (value in minor units, whole
    receipt) or ``bundle`` (``bundle_qty`` of one SKU for ``value`` minor units).
    A promotion with a ``code`` applies only when that code is entered."""

    id: str
    kind: str
    value: int
    code: str | None = None
    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    bundle_qty: int = 0

    def applies_to(self, item: Item) -> bool:
        if not self.skus and not self.categories:
            return True
        return item.sku in self.skus or item.category in self.categories

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skus"], data["categories"] = list(self.skus), list(self.categories)
        return data


@dataclass(frozen=True)
class Catalog:
    items: dict[str, Item]
    tax_profiles: dict[str, TaxProfile]
    promotions: tuple[Promotion, ...] = ()
    version: str = "0"

    def item(self, sku: str) -> Item:
        try:
            return self.items[sku]
        except KeyError:
            raise RuleViolation(
                f"unknown SKU {sku!r}; see `tillbox catalog list` for the SKUs this till sells"
            ) from None

    def profile(self, profile_id: str) -> TaxProfile:
        try:
            return self.tax_profiles[profile_id]
        except KeyError:
            known = ", ".join(sorted(self.tax_profiles)) or "none"
            raise RuleViolation(
                f"tax profile {profile_id!r} is not in the catalog (known: "
                f"{known}); set shop.tax_profile in tillbox.toml"
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "items": [i.to_json() for i in self.items.values()],
            "tax_profiles": [p.to_json() for p in self.tax_profiles.values()],
            "promotions": [p.to_json() for p in self.promotions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalog:
        """Parse and validate; a bad catalog is refused whole with the reason."""
        try:
            items = {}
            for raw in data["items"]:
                item = Item(**raw)
                if not isinstance(item.price_minor, int) or item.price_minor < 0:
                    raise ValueError(f"item {item.sku}: price_minor must be a whole number >= 0")
                items[item.sku] = item
            profiles = {}
            for raw in data["tax_profiles"]:
                profile = TaxProfile(**raw)
                if profile.rounding not in ("line", "receipt"):
                    raise ValueError(f"profile {profile.id}: rounding must be line or receipt")
                profiles[profile.id] = profile
            promos = []
            for raw in data.get("promotions", []):
                raw = dict(raw)
                raw["skus"] = tuple(raw.get("skus", ()))
                raw["categories"] = tuple(raw.get("categories", ()))
                promo = Promotion(**raw)
                if promo.kind not in ("percent", "amount", "bundle"):
                    raise ValueError(f"promotion {promo.id}: unknown kind {promo.kind!r}")
                if promo.kind == "bundle" and (promo.bundle_qty < 2 or len(promo.skus) != 1):
                    raise ValueError(
                        f"promotion {promo.id}: a bundle needs one SKU and bundle_qty >= 2"
                    )
                promos.append(promo)
        except (KeyError, TypeError, ValueError) as exc:
            raise RuleViolation(
                f"catalog refused: {exc}; fix the catalog file and apply it again"
            ) from None
        return cls(items, profiles, tuple(promos), str(data.get("version", "0")))


def demo_catalog() -> Catalog:
    """A small market-stall catalog with two tax profiles and three promotions."""
    items = [
        Item("MUG-01", "Ceramic mug", 1200, "standard", "homeware", initial_stock=40),
        Item("TEE-M", "T-shirt (M)", 2000, "standard", "clothing", initial_stock=25),
        Item("TEE-L", "T-shirt (L)", 2000, "standard", "clothing", initial_stock=25),
        Item("HONEY", "Wildflower honey 250 g", 650, "reduced", "food", initial_stock=60),
        Item("JAM-FR", "Confiture fraise", 450, "reduced", "food", initial_stock=60),
        Item("CAFE", "Café crème", 280, "reduced", "drinks", track_stock=False),
        Item("BRATW", "Bratwürst im Brötchen", 550, "reduced", "food", initial_stock=80),
        Item("POSTCARD", "Postcard (Łódź)", 150, "standard", "paper", initial_stock=200),
        Item(
            "KEYRING-ENG",
            "Engraved wooden keyring",
            900,
            "standard",
            "personalised",
            engravable=True,
            initial_stock=30,
        ),
        Item(
            "BOARD-ENG",
            "Engraved oak board",
            3500,
            "standard",
            "personalised",
            engravable=True,
            initial_stock=10,
        ),
    ]
    profiles = [
        TaxProfile(
            "eu-market",
            "Weekend market (prices include VAT)",
            "EUR",
            True,
            {"standard": 2000, "reduced": 550, "zero": 0},
            rounding="line",
            cash_rounding_minor=0,
        ),
        TaxProfile(
            "ch-festival",
            "Festival (CHF, cash to 0.05)",
            "CHF",
            True,
            {"standard": 810, "reduced": 260},
            rounding="receipt",
            cash_rounding_minor=5,
        ),
        TaxProfile(
            "us-fair",
            "County fair (tax added at till)",
            "USD",
            False,
            {"standard": 825, "reduced": 0},
            rounding="receipt",
        ),
    ]
    promos = [
        Promotion("HONEY3", "bundle", 1650, skus=("HONEY",), bundle_qty=3),
        Promotion("MARKET10", "percent", 1000, code="MARKET10"),
        Promotion("FIVEOFF", "amount", 500, code="FIVEOFF"),
    ]
    return Catalog(
        {i.sku: i for i in items}, {p.id: p for p in profiles}, tuple(promos), version="demo-1"
    )
