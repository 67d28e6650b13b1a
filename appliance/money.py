"""Money as integer minor units (cents, pence, grosze): never floats.

Rounding is half away from zero, done in integers, so every platform and
every language gets the same cent.
"""

from __future__ import annotations


def div_round(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero (denominator > 0)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return sign * quotient


def round_to_step(amount: int, step: int) -> int:
    """Round to a multiple of ``step`` (cash rounding: 5 for 0.05 steps)."""
    if step <= 1:
        return amount
    return div_round(amount, step) * step


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` so the parts sum exactly to ``total``.

    Largest-remainder method; ties go to the earlier weight. Used to spread a
    receipt-level discount or tax over lines without losing a cent.
    """
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [total] + [0] * (len(weights) - 1)
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    shortfall = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:shortfall]:
        floors[i] += 1
    return floors


def format_minor(amount: int, currency: str = "EUR", exponent: int = 2) -> str:
    """Plain, locale-neutral rendering used by the CLI and receipts: ``EUR 12.50``."""
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exponent)
    body = f"{major}.{minor:0{exponent}d}" if exponent else str(major)
    return f"{sign}{currency} {body}"
