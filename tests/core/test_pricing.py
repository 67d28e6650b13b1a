import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.catalog import Catalog, Item, TaxProfile, demo_catalog
from appliance.errors import RuleViolation
from appliance.pricing import CartLine, price_cart

DEMO = demo_catalog()
EU = DEMO.profile("eu-market")


def test_tax_inclusive_line_rounding_with_bundle():
    q = price_cart(DEMO, EU, [CartLine("MUG-01", 2), CartLine("HONEY", 3)])
    mug, honey = q.lines
    assert (mug.gross_minor, mug.net_minor, mug.tax_minor) == (2400, 2000, 400)
    # three honey for 16.50 instead of 19.50; 5.5 % VAT inside 16.50 is 0.86
    assert honey.discount_minor == 300 and honey.promos == ["HONEY3"]
    assert (honey.gross_minor, honey.net_minor, honey.tax_minor) == (1650, 1564, 86)
    assert q.total_minor == 4050 and q.tax_minor == 486 and q.discount_minor == 300
    assert [t["rate"] for t in q.taxes] == ["reduced", "standard"]


def test_same_sku_twice_is_one_line_and_bundle_counts_both():
    q = price_cart(DEMO, EU, [CartLine("HONEY", 2), CartLine("HONEY", 1)])
    assert len(q.lines) == 1 and q.lines[0].qty == 3 and q.total_minor == 1650


def test_tax_exclusive_receipt_rounding_spreads_tax_over_lines():
    us = DEMO.profile("us-fair")
    q = price_cart(DEMO, us, [CartLine("TEE-M", 1), CartLine("MUG-01", 1)])
    assert [ln.tax_minor for ln in q.lines] == [165, 99]  # 8.25 % of 32.00 = 2.64
    assert q.total_minor == 3464 and q.net_minor == 3200


def _tiny_catalog(rounding: str, include: bool, cash_step: int = 0) -> tuple[Catalog, TaxProfile]:
    items = {s: Item(s, s, 5, "std") for s in ("A", "B", "C")}
    items["P"] = Item("P", "P", 1234, "std")
    profile = TaxProfile("t", "t", "EUR", include, {"std": 1000}, rounding, cash_step)
    return Catalog(items, {"t": profile}), profile


def test_line_and_receipt_rounding_differ_as_specified():
    cart = [CartLine("A", 1), CartLine("B", 1), CartLine("C", 1)]
    cat, per_line = _tiny_catalog("line", include=False)
    assert price_cart(cat, per_line, cart).tax_minor == 3  # 0.5 rounds up on each line
    cat, per_receipt = _tiny_catalog("receipt", include=False)
    assert price_cart(cat, per_receipt, cart).tax_minor == 2  # 1.5 rounds up once


def test_cash_rounding_applies_to_cash_only():
    cat, profile = _tiny_catalog("line", include=True, cash_step=5)
    q = price_cart(cat, profile, [CartLine("P", 1)])
    assert q.total_minor == 1234
    assert q.due_minor("cash") == 1235 and q.due_minor("card") == 1234


def test_promo_codes_percent_and_amount():
    q = price_cart(DEMO, EU, [CartLine("BRATW", 1)], promo_code="market10")
    assert q.lines[0].discount_minor == 55 and q.total_minor == 495
    q = price_cart(DEMO, EU, [CartLine("TEE-M", 1), CartLine("CAFE", 1)], promo_code="FIVEOFF")
    assert q.discount_minor == 500 and q.total_minor == 2280 - 500
    # the amount is spread over lines in proportion, so each rate's tax stays right
    assert [ln.discount_minor for ln in q.lines] == [439, 61]


def test_amount_off_never_exceeds_the_receipt():
    q = price_cart(DEMO, EU, [CartLine("POSTCARD", 1)], promo_code="FIVEOFF")
    assert q.total_minor == 0 and q.discount_minor == 150


@pytest.mark.parametrize(
    ("cart", "code", "message"),
    [
        ([CartLine("NOPE", 1)], None, "unknown SKU 'NOPE'"),
        ([CartLine("MUG-01", 0)], None, "above zero"),
        ([CartLine("MUG-01", -2)], None, "above zero"),
        ([CartLine("MUG-01", 10000)], None, "split it"),
        ([], None, "cart is empty"),
        ([CartLine("MUG-01", 1)], "BOGUS", "promo code 'BOGUS' is not valid"),
    ],
)
def test_bad_carts_are_refused_with_the_fix(cart, code, message):
    with pytest.raises(RuleViolation, match=message):
        price_cart(DEMO, EU, cart, code)


def test_bundle_promotion_needs_one_sku():
    bad = DEMO.to_json()
    bad["promotions"].append({"id": "X", "kind": "bundle", "value": 100, "bundle_qty": 2})
    with pytest.raises(RuleViolation, match="bundle needs one SKU"):
        Catalog.from_json(bad)


def test_catalog_json_round_trip():
    assert Catalog.from_json(DEMO.to_json()) == DEMO


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(DEMO.items)), st.integers(1, 50)), min_size=1, max_size=8
    ),
    st.sampled_from([None, "MARKET10", "FIVEOFF"]),
    st.sampled_from(sorted(DEMO.tax_profiles)),
)
def test_totals_always_add_up(cart, code, profile_id):
    profile = DEMO.profile(profile_id)
    q = price_cart(DEMO, profile, [CartLine(s, n) for s, n in cart], code)
    assert q.total_minor == sum(ln.gross_minor for ln in q.lines)
    assert q.tax_minor == sum(ln.tax_minor for ln in q.lines)
    for ln in q.lines:
        assert ln.gross_minor == ln.net_minor + ln.tax_minor
        assert 0 <= ln.discount_minor <= ln.amount_minor
        assert ln.tax_minor >= 0
    basis = sum(ln.basis_minor for ln in q.lines)
    assert q.total_minor == (basis if profile.prices_include_tax else basis + q.tax_minor)
