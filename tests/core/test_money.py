import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.money import allocate, div_round, format_minor, round_to_step


@pytest.mark.parametrize(
    ("n", "d", "expected"),
    [
        (5, 2, 3),
        (4, 2, 2),
        (7, 3, 2),
        (-5, 2, -3),
        (-7, 3, -2),
        (0, 9, 0),
        (149, 100, 1),
        (150, 100, 2),
    ],
)
def test_div_round_is_half_away_from_zero(n, d, expected):
    assert div_round(n, d) == expected


def test_div_round_rejects_non_positive_denominator():
    with pytest.raises(ValueError):
        div_round(1, 0)


@pytest.mark.parametrize(
    ("amount", "step", "expected"), [(1234, 5, 1235), (1232, 5, 1230), (1237, 5, 1235), (99, 0, 99)]
)
def test_cash_rounding(amount, step, expected):
    assert round_to_step(amount, step) == expected


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_allocate_sums_exactly_and_stays_proportional(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    if weight_sum:
        for part, w in zip(parts, weights, strict=True):
            assert abs(part - total * w / weight_sum) < 1 + 1e-9


def test_format_minor():
    assert format_minor(-1205, "EUR") == "-EUR 12.05"
    assert format_minor(7, "JPY", exponent=0) == "JPY 7"
