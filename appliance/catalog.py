"""Catalog, tax profiles and promotions: the data a sale is priced from.

The catalog reaches the till as a ``catalog.applied`` event (from ``init
--demo``, a technician, or a signed region update), so every price a receipt
used can be traced in the log.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.config import Setting
from appliance.errors import RuleViolation, TillError
from appliance.formats.canonical import MAX_SAFE_INT
from appliance.identifiers import IDENTIFIER_RULE, is_identifier, shown

_CURRENCY = re.compile(r"[A-Z]{3}")


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
    A promotion with a ``code`` applies only when that code is entered. ``promoter``
    names the promoter who owns the code (its redemptions count for them at the
    region); ``events`` scopes it to those scheduled events (empty: everywhere)."""

    id: str
    kind: str
    value: int
    code: str | None = None
    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    bundle_qty: int = 0
    promoter: str | None = None
    events: tuple[str, ...] = ()

    def applies_to(self, item: Item) -> bool:
        if not self.skus and not self.categories:
            return True
        return item.sku in self.skus or item.category in self.categories

    def at_event(self, event_id: str) -> bool:
        return not self.events or event_id in self.events

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skus"], data["categories"] = list(self.skus), list(self.categories)
        # written only when set, so a catalog without promoters keeps its exact bytes
        for key in ("promoter", "events"):
            if not data[key]:
                del data[key]
        if self.events:
            data["events"] = list(self.events)
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
            if not isinstance(data, dict):
                raise ValueError("the file must be a JSON object with items and tax_profiles")
            # "source" is added by the till when it records the catalog in the log
            known = {"version", "items", "tax_profiles", "promotions", "source"}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(f"{unknown[0]!r} is not a known catalog field")
            items = {}
            for raw in _records(data, "items", ITEM_SCHEMA, required=True):
                item = Item(**raw)
                if item.sku in items:
                    raise ValueError(f"SKU {item.sku} is listed twice")
                items[item.sku] = item
            profiles = {}
            for raw in _records(data, "tax_profiles", PROFILE_SCHEMA, required=True):
                profile = TaxProfile(**raw)
                profiles[profile.id] = profile
            promos = []
            for raw in _records(data, "promotions", PROMOTION_SCHEMA):
                raw["skus"] = tuple(raw.get("skus", ()))
                raw["categories"] = tuple(raw.get("categories", ()))
                raw["events"] = tuple(raw.get("events", ()))
                promo = Promotion(**raw)
                if promo.kind == "bundle" and (promo.bundle_qty < 2 or len(promo.skus) != 1):
                    raise ValueError(
                        f"promotion {promo.id}: a bundle needs one SKU and bundle_qty >= 2"
                    )
                promos.append(promo)
            version = data.get("version", "0")
            if isinstance(version, bool) or not isinstance(version, str | int):
                raise ValueError(f"version must be a text, got {shown(version)}")
            version = Setting("text").check(str(version))
        except ValueError as exc:
            raise RuleViolation(
                f"catalog refused: {exc}; fix the catalog file and apply it again"
            ) from None
        return cls(items, profiles, tuple(promos), version)


# The catalog's typed schema: the same Setting kinds tillbox.toml is checked with.
_MINOR = {"min": 0, "max": MAX_SAFE_INT}
ITEM_SCHEMA = {
    "sku": Setting("ident", required=True),
    "name": Setting("text", required=True),
    "price_minor": Setting("int", required=True, **_MINOR),
    "tax_rate": Setting("text", required=True, allow_empty=False),
    "category": Setting("text"),
    "engravable": Setting("bool"),
    "track_stock": Setting("bool"),
    "initial_stock": Setting("int", **_MINOR),
}
PROFILE_SCHEMA = {
    "id": Setting("ident", required=True),
    "name": Setting("text", required=True),
    "currency": Setting("text", required=True, choices=()),
    "prices_include_tax": Setting("bool", required=True),
    "rates": Setting("int_map", required=True, min=0, max=10000),  # basis points
    "rounding": Setting("text", choices=("line", "receipt")),
    "cash_rounding_minor": Setting("int", min=0, max=1_000_000),
    "category_rates": Setting("text_map"),
}
PROMOTION_SCHEMA = {
    "id": Setting("ident", required=True),
    "kind": Setting("text", required=True, choices=("percent", "amount", "bundle")),
    "value": Setting("int", required=True, **_MINOR),
    "code": Setting("optional_text"),
    "skus": Setting("text_list"),
    "categories": Setting("text_list"),
    "bundle_qty": Setting("int", min=0, max=1_000_000),
    "promoter": Setting("optional_text"),
    "events": Setting("text_list"),
}
MAX_RECORDS = 100_000


def _records(
    data: dict[str, Any], field_name: str, schema: dict[str, Setting], required: bool = False
) -> list[dict[str, Any]]:
    """Each entry of a catalog list, checked key by key (ValueError names the bad one)."""
    if field_name not in data and not required:
        return []
    if field_name not in data:
        raise ValueError(f"{field_name!r} is missing")
    entries = data[field_name]
    if not isinstance(entries, list) or len(entries) > MAX_RECORDS:
        raise ValueError(f"{field_name} must be a list (of at most {MAX_RECORDS} entries)")
    out = []
    for index, raw in enumerate(entries):
        where = f"{field_name}[{index}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object")
        for key, setting in schema.items():
            if setting.required and key not in raw:
                raise ValueError(f"{where} {key} is missing")
        checked = {}
        for key, value in raw.items():
            if key not in schema:
                raise ValueError(f"{where} {key!r} is not a known field")
            try:
                checked[key] = schema[key].check(value)
            except ValueError as exc:
                raise ValueError(f"{where} {key} {exc}") from None
        if field_name == "promotions":
            for sku in checked.get("skus", ()):
                if not is_identifier(sku):
                    raise ValueError(f"{where} skus must be {IDENTIFIER_RULE}, got {shown(sku)}")
            for key in ("events", "promoter"):
                values = checked.get(key) or ()
                for value in [values] if isinstance(values, str) else values:
                    if not is_identifier(value):
                        raise ValueError(
                            f"{where} {key} must be {IDENTIFIER_RULE}, got {shown(value)}"
                        )
        if field_name == "tax_profiles" and not _CURRENCY.fullmatch(checked["currency"]):
            raise ValueError(
                f"{where} currency must be 3 capital letters, got {shown(checked['currency'])}"
            )
        out.append(checked)
    return out


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


def read_catalog_file(path: str | Path) -> Any:
    """A catalog file's JSON, read with the catalog size cap (``tillbox catalog apply``
    and ``tillbox edge publish-update`` read the same files the same way)."""
    from appliance.boundedio import CATALOG_LIMIT, read_bounded

    raw = read_bounded(path, CATALOG_LIMIT, "catalog")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise TillError(f"cannot read catalog {path} ({exc}); give a JSON catalog file") from None
