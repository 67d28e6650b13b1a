"""Money and time as the cashier reads them: the configured currency in the shop's locale.

The core keeps money as integer minor units and prints ``EUR 12.50`` on the CLI;
the screen shows ``€12.50`` (en) or ``12,50 €`` (de, fr). Integer arithmetic only,
so the screen never shows a cent the receipt does not.
"""

from __future__ import annotations

from datetime import datetime

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF", "PLN": "zł", "JPY": "¥"}
EXPONENTS = {"JPY": 0}
# (thousands separator, decimal mark, symbol after the number)
LOCALES = {"en": (",", ".", False), "de": (".", ",", True), "fr": (" ", ",", True)}


def money(minor: int, currency: str, locale: str = "en", *, whole: bool = False) -> str:
    """``minor`` units of ``currency`` as the locale writes them (unknown locale: en).

    ``whole`` drops a zero fraction (a banknote: €50 rather than €50.00).
    """
    thousands, decimal, after = LOCALES.get(locale[:2].lower(), LOCALES["en"])
    exponent = EXPONENTS.get(currency, 2)
    sign = "-" if minor < 0 else ""
    major, frac = divmod(abs(minor), 10**exponent)
    digits = f"{major:,}".replace(",", thousands)
    show_frac = exponent and not (whole and frac == 0)
    number = f"{digits}{decimal}{frac:0{exponent}d}" if show_frac else digits
    symbol = SYMBOLS.get(currency, currency)
    if after:
        return f"{sign}{number} {symbol}"
    if len(symbol) > 1 and symbol.isalpha():
        return f"{sign}{symbol} {number}"
    return f"{sign}{symbol}{number}"


def parse_minor(text: str, currency: str) -> int | None:
    """Keypad digits (an amount typed in minor units, like a calculator till) to minor units."""
    digits = "".join(c for c in text if c.isdigit())
    if not digits:
        return None
    return int(digits[:9])


def clock(wall_ms: int) -> str:
    """Local wall time of an event, HH:MM:SS (the inspector's view of today)."""
    return datetime.fromtimestamp(wall_ms / 1000).strftime("%H:%M:%S")
