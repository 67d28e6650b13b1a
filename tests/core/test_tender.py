"""Quick tender amounts, against hand-written expectations per currency."""

from __future__ import annotations

import pytest

from appliance.tender import quick_tenders


@pytest.mark.parametrize(
    ("due", "currency", "expected"),
    [
        (1340, "EUR", [1340, 2000, 5000, 10000]),  # 13.40: exact, 20, 50, 100
        (2000, "EUR", [2000, 5000, 10000, 20000]),  # a note's own value is the exact amount
        (499, "EUR", [499, 500, 1000, 2000]),
        (15000, "EUR", [15000, 20000, 40000, 60000]),  # above the notes: multiples of 200
        (27500, "EUR", [27500, 40000, 60000, 80000]),
        (350, "USD", [350, 500, 1000, 2000]),  # USD has a 1-dollar note
        (4000, "GBP", [4000, 5000, 10000, 15000]),
        (1995, "CHF", [1995, 2000, 5000, 10000]),
        (1995, "XTS", [1995, 2000, 5000, 10000]),  # unknown currency: 5-10-20-50-100-200
        (0, "EUR", []),
    ],
)
def test_quick_tenders(due, currency, expected):
    assert quick_tenders(due, currency) == expected
