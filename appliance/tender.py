"""Quick tender: the amounts a customer is likely to hand over for a cash payment.

The pay screen offers the exact amount and the next banknotes above it, so the
cashier taps once instead of typing. Note values are in minor units per currency;
an unknown currency gets the common 5-10-20-50-100-200 series.
"""

from __future__ import annotations

NOTES_MINOR: dict[str, tuple[int, ...]] = {
    "EUR": (500, 1000, 2000, 5000, 10000, 20000),
    "GBP": (500, 1000, 2000, 5000),
    "USD": (100, 500, 1000, 2000, 5000, 10000),
    "CHF": (1000, 2000, 5000, 10000, 20000, 100000),
    "PLN": (1000, 2000, 5000, 10000, 20000, 50000),
    "CZK": (10000, 20000, 50000, 100000, 200000, 500000),
    "SEK": (2000, 5000, 10000, 20000, 50000, 100000),
    "DKK": (5000, 10000, 20000, 50000, 100000),
    "NOK": (5000, 10000, 20000, 50000, 100000),
    "JPY": (1000, 2000, 5000, 10000),  # no minor unit: yen
}
DEFAULT_NOTES_MINOR = (500, 1000, 2000, 5000, 10000, 20000)


def notes(currency: str) -> tuple[int, ...]:
    return NOTES_MINOR.get(currency.upper(), DEFAULT_NOTES_MINOR)


def quick_tenders(due_minor: int, currency: str, count: int = 3) -> list[int]:
    """The exact amount, then up to ``count`` round amounts above it, ascending.

    The round amounts are the next note values above ``due_minor``; above the largest
    note, the next multiples of it (a 250.00 sale in EUR offers 400.00, 600.00, ...).
    """
    if due_minor <= 0:
        return []
    values = notes(currency)
    above = [n for n in values if n > due_minor]
    largest = values[-1]
    multiple = (max([due_minor, *above]) // largest + 1) * largest
    while len(above) < count:
        above.append(multiple)
        multiple += largest
    return [due_minor, *above[:count]]
